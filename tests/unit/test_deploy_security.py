"""docker/ and deploy/k8s/ are locked, and the locks agree with the pods they guard.

Parsed, not applied: NetworkPolicies are read as Kubernetes reads them (selectors against the
pods' labels, ports against the containers' ports), env as Kubernetes builds it, compose.yaml
as compose interpolates it, and Triton's entrypoint is run for real.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from orchestrator.infer.triton_server import keepalive_args, restricted_api_args

from .test_deploy_files import (
    COMPOSE_ENV,
    DOCKER,
    ENTRYPOINT,
    K8S,
    REDIS_PASSWORD,
    SECRETS,
    MissingVariable,
    check_orchestrator_env,
    compose,
    container,
    env_of,
    expand,
    find,
    k8s_documents,
)

ANYONE = "anyone"
NOT_APPLIED = {"kustomization.yaml", "podmonitor.yaml", "prometheus-adapter-rules.yaml"}  # each says why


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job"}]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is read here: {selector}"
    return dict(selector.get("matchLabels", {})).items() <= labels.items()


def container_ports(workload: dict[str, Any]) -> dict[str, int]:
    return {
        p["name"]: p["containerPort"] for c in workload["spec"]["template"]["spec"]["containers"] for p in c["ports"]
    }


def peer(entry: dict[str, Any], docs: list[dict[str, Any]]) -> str:
    """A `from` entry, named: the workload in this namespace it selects, or `<namespace>/<label>` beyond it."""
    if "namespaceSelector" in entry:
        namespace = entry["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        return f"{namespace}/{entry['podSelector']['matchLabels']['app.kubernetes.io/name']}"
    names = [w["metadata"]["name"] for w in workloads(docs) if selects(entry["podSelector"], pod_labels(w))]
    assert len(names) == 1, f"{entry} selects {names}: no pod, or more than the one meant"
    return names[0]


def who_may_reach(workload: dict[str, Any], docs: list[dict[str, Any]]) -> dict[int, set[str]]:
    """Per container port: the peers the namespace's NetworkPolicies let in (none listed: nobody)."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    ports = container_ports(workload)
    allowed: dict[int, set[str]] = {port: set() for port in ports.values()}
    for policy in policies:
        if not selects(policy["spec"]["podSelector"], pod_labels(workload)):
            continue
        assert "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", []):
            rule_ports = [p["port"] for p in rule.get("ports", [])] or list(ports.values())
            for port in rule_ports:
                port = ports.get(port, port)  # a named port is the container's
                assert port in allowed, (
                    f"{policy['metadata']['name']}: {workload['metadata']['name']} has no port {port}"
                )
                allowed[port] |= {peer(e, docs) for e in rule["from"]} if "from" in rule else {ANYONE}
    return allowed


def test_kustomization_applies_every_manifest_but_those_for_other_tools() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {p.name for p in K8S.glob("*.yaml")} - NOT_APPLIED
    for name in NOT_APPLIED - {"kustomization.yaml"}:
        assert "not" in (K8S / name).read_text().split("\n\n")[0].lower(), f"{name} should say why it is not applied"


def test_every_pod_runs_with_runtime_default_seccomp_no_privilege_escalation_and_no_capabilities() -> None:
    found = workloads(k8s_documents())
    assert {w["metadata"]["name"] for w in found} == {"orchestrator", "triton", "redis", "build-engines"}
    for workload in found:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True  # every image has its user (Triton's NGC one: 1000)
        for spec in pod["containers"]:
            context = spec["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}


def test_ingress_is_denied_unless_a_policy_lets_it_in() -> None:
    docs = k8s_documents()
    deny = [d for d in docs if d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"] == {}]
    assert deny and all(d["spec"]["policyTypes"] == ["Ingress"] and not d["spec"].get("ingress") for d in deny)


def test_only_orchestrators_reach_triton_and_redis_and_only_prometheus_reads_tritons_metrics() -> None:
    docs = k8s_documents()
    triton, redis, orchestrator = (find(docs, kind, name) for kind, name in (
        ("Deployment", "triton"), ("StatefulSet", "redis"), ("Deployment", "orchestrator")
    ))  # fmt: skip
    ports = container_ports(triton)
    assert who_may_reach(triton, docs) == {
        ports["http"]: {"orchestrator"},
        ports["grpc"]: {"orchestrator"},
        ports["metrics"]: {"monitoring/prometheus"},  # where prometheus-adapter-rules.yaml's Prometheus runs
    }
    assert who_may_reach(redis, docs) == {container_ports(redis)["redis"]: {"orchestrator"}}
    assert who_may_reach(orchestrator, docs) == {container_ports(orchestrator)["http"]: {ANYONE}}  # the API


def test_redis_wants_a_password_from_a_secret_never_evicts_and_the_orchestrators_url_carries_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = k8s_documents()
    redis = container(find(docs, "StatefulSet", "redis"))
    env = env_of(redis, docs)
    args = [expand(a, env) for a in redis["args"]]
    assert args[args.index("--requirepass") + 1] == REDIS_PASSWORD  # from the Secret, never in the manifest
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--maxmemory") + 1].endswith("mb")
    assert env["REDISCLI_AUTH"] == REDIS_PASSWORD and redis["readinessProbe"]["exec"]["command"][0] == "redis-cli"

    orchestrator = container(find(docs, "Deployment", "orchestrator"))
    settings = check_orchestrator_env(env_of(orchestrator, docs), monkeypatch)
    assert urlsplit(settings.redis_url).password == REDIS_PASSWORD
    kustomization = (K8S / "kustomization.yaml").read_text()
    for secret, _ in SECRETS:  # the operator is told to create each before the first apply
        assert f"create secret generic {secret} " in kustomization


def test_every_orchestrator_mounts_one_read_write_many_volume_at_the_upload_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = k8s_documents()
    deployment = find(docs, "Deployment", "orchestrator")
    assert deployment["spec"]["replicas"] > 1  # why it must be shared
    settings = check_orchestrator_env(env_of(container(deployment), docs), monkeypatch)
    assert settings.upload_dir is not None
    mount = next(m for m in container(deployment)["volumeMounts"] if m["mountPath"] == str(settings.upload_dir))
    assert not mount.get("readOnly")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    claim = find(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    fs_group = deployment["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
    assert fs_group == deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]  # writable to it


def test_triton_reads_the_engines_a_job_builds_on_a_shared_volume() -> None:
    """An engine is built on the GPU it serves on: not in the image, and an emptyDir starts empty in every pod."""
    docs = k8s_documents()
    triton, job = find(docs, "Deployment", "triton"), find(docs, "Job", "build-engines")
    reads = next(m for m in container(triton)["volumeMounts"] if m["mountPath"] == "/engines")
    assert reads.get("readOnly")
    volume = next(v for v in triton["spec"]["template"]["spec"]["volumes"] if v["name"] == reads["name"])
    claim_name = volume["persistentVolumeClaim"]["claimName"]
    assert find(docs, "PersistentVolumeClaim", claim_name)["spec"]["accessModes"] == ["ReadWriteMany"]

    builder = container(job)
    writes = next(m for m in builder["volumeMounts"] if m["mountPath"] == "/engines")
    assert not writes.get("readOnly")
    job_pod = job["spec"]["template"]["spec"]
    job_volume = next(v for v in job_pod["volumes"] if v["name"] == writes["name"])
    assert job_volume["persistentVolumeClaim"]["claimName"] == claim_name
    assert job_pod["securityContext"]["fsGroup"] == job_pod["securityContext"]["runAsUser"]  # writable to it
    # the serving image builds them (the same TensorRT-LLM), on a GPU, into the folder the header names
    assert builder["image"] == container(triton)["image"]
    assert builder["resources"]["limits"]["nvidia.com/gpu"] == 1
    script = " ".join(builder["args"])
    out = re.findall(r"/opt/longscribe/build_engines.sh (\S+) (\S+)", script)
    assert out and out[0][1].startswith("/engines/")
    assert f"LONGSCRIBE_WHISPER_MODEL={out[0][1]}" in (K8S / "engines.yaml").read_text()
    assert "sha256sum -c" in script  # the checkpoint fetched is the one meant


def test_every_orchestrator_reads_its_api_keys_from_a_secret_so_none_runs_without_auth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = k8s_documents()
    deployment = find(docs, "Deployment", "orchestrator")
    settings = check_orchestrator_env(env_of(container(deployment), docs), monkeypatch)
    assert settings.api_keys_file is not None and not settings.no_auth
    keys_dir = str(settings.api_keys_file.parent)
    mount = next(m for m in container(deployment)["volumeMounts"] if m["mountPath"] == keys_dir)
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert mount.get("readOnly") and not volume["secret"].get("optional")  # no Secret: the pod does not start
    assert f"create secret generic {volume['secret']['secretName']} " in (K8S / "kustomization.yaml").read_text()

    services = orchestrator_services(compose()["services"])
    for service in services.values():
        settings = check_orchestrator_env(service["environment"], monkeypatch)
        assert settings.api_keys_file is not None and settings.api_keys_file.parent.as_posix() == "/run/secrets"
        assert settings.api_keys_file.name in service["secrets"]
    assert "api_keys" in (DOCKER.parent / ".gitignore").read_text()  # docker/api_keys stays out of git


def test_a_drain_takes_one_orchestrator_and_one_triton_at_a_time() -> None:
    docs = k8s_documents()
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for name in ("orchestrator", "triton"):
        labels = pod_labels(find(docs, "Deployment", name))
        covering = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(covering) == 1 and covering[0]["spec"] == {**covering[0]["spec"], "maxUnavailable": 1}, name
    # one Redis replica: a budget could only forbid every drain (redis.yaml says so)
    assert find(docs, "StatefulSet", "redis")["spec"]["replicas"] == 1
    assert not [b for b in budgets if selects(b["spec"]["selector"], pod_labels(find(docs, "StatefulSet", "redis")))]


# Compose


def orchestrator_services(services: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in services.items() if s.get("build", {}).get("dockerfile", "").endswith("orchestrator")}


def test_compose_refuses_to_start_without_a_redis_password() -> None:
    with pytest.raises(MissingVariable, match="LONGSCRIBE_REDIS_PASSWORD"):
        compose({})


def test_compose_locks_redis_shares_one_uploads_volume_and_publishes_only_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = compose()
    services = loaded["services"]
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == COMPOSE_ENV["LONGSCRIBE_REDIS_PASSWORD"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction" and "--maxmemory" in command
    assert redis["environment"]["REDISCLI_AUTH"] == REDIS_PASSWORD  # the healthcheck's redis-cli

    orchestrators = orchestrator_services(services)
    volumes = set()
    for service in orchestrators.values():
        settings = check_orchestrator_env(service["environment"], monkeypatch)
        assert urlsplit(settings.redis_url).password == REDIS_PASSWORD
        mounts = [v.split(":") for v in service["volumes"]]
        volumes |= {source for source, target, *_ in mounts if target == str(settings.upload_dir)}
    assert len(volumes) == 1 and volumes <= set(loaded["volumes"])  # one named volume, not a host path

    published = {name for name, service in services.items() if service.get("ports")}
    assert published == set(orchestrators)  # Triton and Redis only on the compose network
    for name, service in services.items():
        if name.startswith("triton"):
            assert service["environment"]["LONGSCRIBE_TRITON_ADMIN_TOKEN"] == ""  # the entrypoint draws one


# Triton's image


def entrypoint_flags(token: str | None) -> subprocess.CompletedProcess[str]:
    """What the image's entrypoint runs, printed one argument a line instead of run."""
    env = {"PATH": os.environ["PATH"], **({"LONGSCRIBE_TRITON_ADMIN_TOKEN": token} if token is not None else {})}
    return subprocess.run([str(ENTRYPOINT), "printf", r"%s\n", "tritonserver"], env=env, capture_output=True, text=True)


def restricted(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "restricted" in line]


def test_the_triton_image_locks_the_model_repository_api_as_serve_does() -> None:
    token = "x" * 8 + "0123456789abcdef" * 2
    assert restricted(entrypoint_flags(token)) == restricted_api_args(token)  # the flags serve passes, checked live

    drawn = [restricted(entrypoint_flags(unset)) for unset in (None, "", None)]
    secrets = [flags[0].rsplit("=", 1)[1] for flags in drawn]
    assert all(len(s) >= 32 for s in secrets) and len(set(secrets)) == 3  # a fresh random token each start
    assert all(flags == restricted_api_args(s) for flags, s in zip(drawn, secrets))

    for bad in ("short", "has space " * 5, "comma,colon:equals=" * 3):
        done = entrypoint_flags(bad)
        assert done.returncode == 64 and "LONGSCRIBE_TRITON_ADMIN_TOKEN" in done.stderr, bad


def test_the_triton_image_accepts_the_orchestrators_keepalive_pings_as_serve_does() -> None:
    done = entrypoint_flags(None)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if "keepalive" in line or "ping" in line] == keepalive_args()

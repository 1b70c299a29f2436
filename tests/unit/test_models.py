"""Several models in one service: names, defaults, the Triton model each becomes, the generated
repository Triton serves, and the API's answers with a stand-in transcriber."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from orchestrator.api.app import MODEL_HEADER, create_app
from orchestrator.common.net import serving
from orchestrator.errors import ModelNotFound
from orchestrator.infer import repository
from orchestrator.infer.catalogue import Catalogue
from orchestrator.infer.triton_server import server_args
from orchestrator.schemas import TranscribeOutput, TranscribeRequest
from orchestrator.settings import Settings

from .test_request_validation import FAKE_OUTPUT, SEED_BODY

TWO = Settings(models=["tiny.en", "base"])


def test_the_first_model_is_the_default_and_keeps_the_plain_triton_name() -> None:
    catalogue = Catalogue.from_settings(TWO)
    assert catalogue.names() == ["tiny.en", "base"]
    assert [m.triton_name for m in catalogue.models] == ["whisper", "whisper-base"]
    assert catalogue.pick(None) == catalogue.pick("whisper-1") == catalogue.default
    assert catalogue.pick("base").source == "base"


def test_without_models_the_older_setting_or_tiny_en_is_served() -> None:
    assert Catalogue.from_settings(Settings()).names() == ["tiny.en"]
    assert Catalogue.from_settings(Settings(whisper_weights="base")).names() == ["base"]


def test_names_come_from_hub_ids_directories_or_are_given() -> None:
    settings = Settings(models=["Systran/faster-whisper-large-v3@abc", "/models/my-ct2/", "fast=turbo"])
    catalogue = Catalogue.from_settings(settings)
    assert catalogue.names() == ["Systran/faster-whisper-large-v3", "my-ct2", "fast"]
    assert catalogue.pick("fast").source == "turbo"
    for model in catalogue.models:  # Triton names are directory names
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", model.triton_name), model.triton_name


def test_a_name_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Catalogue.from_settings(Settings(models=["base", "base"]))


def test_an_unknown_model_names_those_there_are() -> None:
    with pytest.raises(ModelNotFound) as caught:
        Catalogue.from_settings(TWO).pick("large-v3")
    assert caught.value.status == 404
    assert "tiny.en" in caught.value.message and "base" in caught.value.message


def test_the_generated_repository_has_one_whisper_model_each_and_links_the_others(tmp_path: Path) -> None:
    catalogue = Catalogue.from_settings(TWO)
    resolved = {m.triton_name: f"/weights/{m.name}" for m in catalogue.models}
    root = repository.build(TWO, resolved, tmp_path)
    for model in catalogue.models:
        config = (root / model.triton_name / "config.pbtxt").read_text()
        assert re.search(rf'^name: "{re.escape(model.triton_name)}"$', config, re.MULTILINE)
        assert f'string_value: "/weights/{model.name}"' in config
        assert (root / model.triton_name / "1" / "model.py").is_file()
    assert (root / "micro_chunker").resolve() == (TWO.model_repository / "micro_chunker").resolve()
    assert not (root / "longscribe_core").exists()  # no model; the stub imports it from the site dirs
    args = server_args(TWO, Path("/b"), root)
    assert args[args.index("--model-repository") + 1] == str(root)
    assert [args[i + 1] for i, a in enumerate(args) if a == "--load-model"] == [
        "whisper",
        "whisper-base",
        "micro_chunker",
        "speaker_encoder",
    ]


class Recorder:
    def __init__(self) -> None:
        self.models: list[str | None] = []

    async def __call__(self, request: TranscribeRequest, *_: object) -> TranscribeOutput:
        self.models.append(request.params.model)
        name = Catalogue.from_settings(TWO).pick(request.params.model).name  # as the pipeline names it
        return FAKE_OUTPUT.model_copy(update={"model": name})


async def test_models_are_listed_in_openais_shape_and_unknown_ones_answer_404() -> None:
    recorder = Recorder()
    async with serving(create_app(TWO, transcriber=recorder)) as base, aiohttp.ClientSession() as session:
        async with session.get(f"{base}/v1/models") as response:
            listing = await response.json()
        assert listing["object"] == "list"
        assert [m["id"] for m in listing["data"]] == ["tiny.en", "base", "whisper-1"]  # the default's alias last
        assert all(m["object"] == "model" and isinstance(m["created"], int) for m in listing["data"])
        async with session.get(f"{base}/v1/models/base") as response:
            assert response.status == 200 and (await response.json())["id"] == "base"
        body = {**SEED_BODY, "params": {"model": "large-v3"}}
        for path in ("/v1/transcribe", "/v1/jobs"):
            async with session.post(f"{base}{path}", json=body) as response:
                error = await response.json()
                assert response.status == 404, error
                assert error["error"]["code"] == "model_not_found" and "base" in error["error"]["message"]
        form = aiohttp.FormData({"url": SEED_BODY["media_url"], "model": "nope"})
        async with session.post(f"{base}/v1/audio/transcriptions", data=form) as response:
            assert response.status == 404
        body = {**SEED_BODY, "params": {"model": "base"}, "response_format": "verbose_json"}
        async with session.post(f"{base}/v1/transcribe", json=body) as response:
            assert response.status == 200 and (await response.json())["model"] == "base"
            assert response.headers[MODEL_HEADER] == "base"  # in every format; plain json keeps the seed's keys
        form = aiohttp.FormData({"url": SEED_BODY["media_url"], "model": "whisper-1"})
        async with session.post(f"{base}/v1/audio/transcriptions", data=form) as response:
            assert (await response.json())["model"] == "tiny.en"
    assert recorder.models == ["base", "whisper-1"]

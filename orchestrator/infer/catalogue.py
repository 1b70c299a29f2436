"""The Whisper models one service serves: the name a request uses, where the weights come from,
and the Triton model that runs them. Derived from settings alone, so the managed Triton and the
API agree without talking. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.errors import ModelNotFound, TranslationUnsupported
from orchestrator.settings import Settings

OPENAI_DEFAULT = "whisper-1"  # what OpenAI's clients send: the service's default model
DEFAULT_SOURCE = "tiny.en"
MULTILINGUAL_EXAMPLE = "base"  # packaged like tiny.en: what to serve for translation when nothing served can
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")  # Triton model names are directory names: no slashes


@dataclass(frozen=True)
class ServedModel:
    name: str  # what requests say (`params.model`, OpenAI's `model`) and answers report
    source: str  # packaged name, faster-whisper name, Hub id[@revision] or directory (longscribe_core.weights)
    triton_name: str  # the Triton model: visible to model control, metrics and perf_analyzer

    @property
    def english_only(self) -> bool:
        """Named `.en` (tiny.en, Systran/faster-whisper-small.en, distil-small.en, a directory so named):
        Whisper's English-only models, which cannot translate. Known from settings alone, so a request is
        refused before any media is read; any other English-only model is refused by the engine itself."""
        return any(_last_part(text).lower().endswith(".en") for text in (self.name, self.source))


def _entry(entry: str) -> tuple[str, str]:
    """`name=source`, or `source` named after itself (a directory by its last component, a Hub id without @rev)."""
    name, sep, source = entry.partition("=")
    if sep and name and source:
        return name.strip(), source.strip()
    source = entry.strip()
    if source.startswith(("/", ".", "~")):
        return source.rstrip("/").rsplit("/", 1)[-1], source
    return source.split("@", 1)[0], source


def _last_part(source: str) -> str:
    """A directory's last component, a Hub id's repository name, without `@revision`."""
    return source.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Catalogue:
    models: tuple[ServedModel, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalogue:
        """`models`, else `whisper_weights`, else tiny.en; the first keeps the plain Triton name
        (`whisper`, what containers, dashboards and the deploy files know), the others `whisper-<name>`."""
        entries = settings.models or [settings.whisper_weights or DEFAULT_SOURCE]
        served: list[ServedModel] = []
        for i, entry in enumerate(entries):
            name, source = _entry(entry)
            if name == OPENAI_DEFAULT or any(m.name == name for m in served):
                raise ValueError(f"model name {name!r} is given twice or is reserved; name one `other={source}`")
            triton = settings.whisper_model if i == 0 else f"{settings.whisper_model}-{_UNSAFE.sub('-', name)}"
            if any(m.triton_name == triton for m in served):
                triton = f"{triton}-{i}"
            served.append(ServedModel(name, source, triton))
        return cls(tuple(served))

    @property
    def default(self) -> ServedModel:
        return self.models[0]

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def pick(self, name: str | None, task: str = "transcribe") -> ServedModel:
        """The model a request asked for; absent or `whisper-1`: the default. Unknown: ModelNotFound (404).

        `task` translate on an English-only model: TranslationUnsupported (422), naming a multilingual one."""
        model = self._named(name)
        if task == "translate" and model.english_only:
            raise self._cannot_translate(model)
        return model

    def _named(self, name: str | None) -> ServedModel:
        if not name or name == OPENAI_DEFAULT:
            return self.default
        for model in self.models:
            if model.name == name:
                return model
        raise ModelNotFound(name, self.names())

    def _cannot_translate(self, model: ServedModel) -> TranslationUnsupported:
        """The refusal, naming the multilingual models served, or one to serve when there is none."""
        others = [m.name for m in self.models if not m.english_only]
        message = f"the model {model.name!r} is English-only and cannot translate; "
        if others:
            return TranslationUnsupported(
                message + f"this service translates with the multilingual model {' or '.join(map(repr, others))}",
                hint=f"Send params.model={others[0]!r} (OpenAI: model={others[0]!r}) with the translate task; "
                "GET /v1/models lists the models.",
            )
        return TranslationUnsupported(
            message + f"this service serves no multilingual model: one such as {MULTILINGUAL_EXAMPLE!r} can",
            hint=f"Serve a multilingual model such as {MULTILINGUAL_EXAMPLE!r} beside it (`longscribe serve "
            f"--model tiny.en --model {MULTILINGUAL_EXAMPLE}`, or LONGSCRIBE_MODELS="
            f'\'["tiny.en", "{MULTILINGUAL_EXAMPLE}"]\') and ask for it with params.model.',
        )

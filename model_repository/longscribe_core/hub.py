"""CTranslate2 Whisper weights from the Hugging Face Hub, into its standard cache.

`huggingface_hub` owns the cache: HF_HOME / HF_HUB_CACHE choose where it is,
HF_HUB_OFFLINE=1 serves only what is already there, HF_TOKEN reaches gated
repositories, and a download draws its own progress bars on stderr.
"""

from __future__ import annotations

from pathlib import Path

# faster-whisper's short names and the Hub repositories they stand for, copied from
# faster_whisper.utils._MODELS in faster-whisper 1.2.1 (tests/unit/test_weights.py checks
# they still agree), so `--model large-v3` means here what it means there, without
# importing faster-whisper into the service.
ALIASES: dict[str, str] = {
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "tiny": "Systran/faster-whisper-tiny",
    "base.en": "Systran/faster-whisper-base.en",
    "base": "Systran/faster-whisper-base",
    "small.en": "Systran/faster-whisper-small.en",
    "small": "Systran/faster-whisper-small",
    "medium.en": "Systran/faster-whisper-medium.en",
    "medium": "Systran/faster-whisper-medium",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large": "Systran/faster-whisper-large-v3",
    "distil-large-v2": "Systran/faster-distil-whisper-large-v2",
    "distil-medium.en": "Systran/faster-distil-whisper-medium.en",
    "distil-small.en": "Systran/faster-distil-whisper-small.en",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
    "distil-large-v3.5": "distil-whisper/distil-large-v3.5-ct2",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}
# the files a CTranslate2 Whisper model needs: faster_whisper.utils.download_model's list
ALLOW_PATTERNS = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]


class HubWeightsUnavailable(RuntimeError):
    """The Hub repository could not be fetched, and no cached copy exists."""


def looks_like_repo_id(source: str) -> bool:
    """`org/name`, optionally `@revision`: what a Hub id looks like (a path that exists is a directory)."""
    repo = source.split("@", 1)[0]
    parts = repo.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "/", "~"))


def split_revision(source: str) -> tuple[str, str | None]:
    """`org/name@rev` -> (`org/name`, `rev`); a pinned revision is a branch, tag or commit."""
    repo, _, revision = source.partition("@")
    return repo, revision or None


def fetch_command(repo_id: str, revision: str | None) -> str:
    pinned = f" --revision {revision}" if revision else ""
    return f"hf download {repo_id}{pinned}"


def snapshot(repo_id: str, revision: str | None, label: str) -> Path:
    """The cached snapshot of `repo_id` at `revision`, downloaded first when missing and allowed.

    `label` is the name the user gave (an alias or the id), for the error message."""
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError as exc:  # only the Triton side can lack it (a slim container)
        raise HubWeightsUnavailable(
            f"model {label!r} comes from the Hugging Face Hub: pip install huggingface_hub"
        ) from exc
    try:
        path = huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS)
    except errors.LocalEntryNotFoundError as exc:  # offline, or the Hub unreachable, and nothing cached
        raise HubWeightsUnavailable(
            f"model {label!r} (Hugging Face repository {repo_id}{'@' + revision if revision else ''}) is not in "
            f"the Hugging Face cache ({huggingface_hub.constants.HF_HUB_CACHE}) and cannot be downloaded now "
            f"({'HF_HUB_OFFLINE is set' if huggingface_hub.constants.HF_HUB_OFFLINE else 'the Hub is unreachable'}). "
            f"Fetch it once on a machine with network: `{fetch_command(repo_id, revision)}` "
            "(or `huggingface-cli download ...`) into the same cache, or start once online without HF_HUB_OFFLINE."
        ) from exc
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.GatedRepoError) as exc:
        raise HubWeightsUnavailable(
            f"model {label!r}: the Hub has no accessible repository {repo_id}"
            f"{'@' + revision if revision else ''} ({type(exc).__name__}); check the id, the revision, "
            "and HF_TOKEN for a gated or private repository"
        ) from exc
    except errors.HfHubHTTPError as exc:
        raise HubWeightsUnavailable(f"model {label!r}: downloading {repo_id} failed: {exc}") from exc
    snapshot_dir = Path(path)
    if not (snapshot_dir / "model.bin").is_file():
        raise HubWeightsUnavailable(
            f"model {label!r}: {repo_id} has no model.bin; it is not a CTranslate2 Whisper conversion "
            "(faster-whisper's format). Convert it with ct2-transformers-converter, "
            "or pick a Systran/faster-* repository."
        )
    return snapshot_dir

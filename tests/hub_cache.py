"""A Hugging Face Hub cache made offline, laid out as huggingface_hub lays it out itself."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from longscribe_core import weights


def hub_cache_from(source: Path, root: Path, repo_id: str) -> str:
    """Put `source`'s files in `root` as `repo_id`; return the revision refs/main points at.

    models--Org--name/refs/main holds a 40-hex revision, snapshots/<rev>/<file> are relative
    links to blobs/<sha256>: what `huggingface_hub.snapshot_download` writes and reads."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()  # 40 hex digits, as a commit id
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "blobs").mkdir()
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        blob = repo / "blobs" / weights.sha256_of(file)
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    return revision

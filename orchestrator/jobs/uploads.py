"""Upload files that no request or job will delete any more: swept from the upload directory.

A request or job deletes its upload on every path it takes. What no path
reaches: a process killed mid-request (its `finally` never runs), or a
queued job whose record Redis lost (nothing names the file any more). Each
orchestrator with jobs looks every `SWEEP_S`: one of our files
(`longscribe-upload-*`), untouched for longer than any request may run, and
named by no job still active in the fleet, is deleted. With a shared upload
volume, any orchestrator may delete what another left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path

from redis.exceptions import RedisError

from orchestrator.errors import JobNotFound
from orchestrator.jobs.records import ACTIVE
from orchestrator.jobs.store import JobStore
from orchestrator.schemas import UploadRequest

log = logging.getLogger("longscribe.uploads")

PREFIX = "longscribe-upload-"  # every upload file's name starts so (api/bodies.py)
SWEEP_S = 600.0
SLACK_S = 600.0  # beyond the request time limit, before an untouched file counts as left behind


def upload_dir(configured: Path | None) -> Path:
    return configured or Path(tempfile.gettempdir())


async def in_use(store: JobStore) -> set[Path]:
    """The upload files the fleet's unfinished jobs name."""
    used = set()
    for job_id in await store.client.smembers(ACTIVE):
        with contextlib.suppress(JobNotFound):
            request = (await store.spec(str(job_id))).request
            if isinstance(request, UploadRequest):
                used.add(request.upload.path)
    return used


async def sweep(store: JobStore, directory: Path, older_than_s: float) -> list[Path]:
    """Delete our files in `directory` untouched for `older_than_s` that no unfinished job names; those deleted."""
    cutoff = time.time() - older_than_s
    stale = [p for p in directory.glob(f"{PREFIX}*") if _mtime(p) < cutoff]
    if not stale:
        return []
    used = await in_use(store)  # read after the listing: a job submitted meanwhile names a file too young anyway
    deleted = []
    for path in stale:
        if path not in used:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                deleted.append(path)
    if deleted:
        log.warning("deleted %d upload files left behind in %s (a killed request, or a job Redis lost)",
                    len(deleted), directory)  # fmt: skip
    return deleted


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()  # gone meanwhile: not stale


async def sweep_forever(store: JobStore, directory: Path, older_than_s: float) -> None:
    while True:
        try:
            await sweep(store, directory, older_than_s)
        except (RedisError, OSError) as exc:
            log.warning("sweeping %s failed: %s", directory, exc)
        await asyncio.sleep(SWEEP_S)

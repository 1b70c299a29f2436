"""What a job is in Redis: its request, its keys, its events, and its JSON.

    longscribe:queue                 stream + consumer group `workers`: one entry per job waiting or running;
                                     a running job is an entry pending at its worker (the lease)
    longscribe:queued, :active       sets of job ids: waiting (admission counts them), not yet finished
    longscribe:owner:{key id}:queued set of job ids: one API key's waiting jobs (its queue limit counts those
                                     still in :queued); every SREM from :queued also SREMs it here
    longscribe:job:{id}              hash: spec, status, times, worker, progress, error, cancel, webhook
    longscribe:job:{id}:events       stream: the job's events; entry ids are the SSE ids
    longscribe:job:{id}:chunks       hash: chunk index -> finished ChunkPart (the checkpoints)
    longscribe:job:{id}:result       the finished transcript (TranscribeOutput JSON, verbose)
    longscribe:job:{id}:result:staged  the same while it is written, in pieces; the job's end renames it
    longscribe:cancel                pub/sub channel: job ids to cancel wherever they run
    longscribe:webhooks              set of job ids whose webhook is not yet delivered nor given up

    longscribe:owner:{owner}:queued  set of job ids: one key's waiting jobs

Every key of a job expires: `job_ttl_sec` after its end, and while it runs
`job_ttl_sec` after its worker last renewed its lease (so a job whose worker
and Redis data vanished does not live forever). The fleet's keys (the queue,
the sets) hold only what jobs put in them and take out again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.assemble.progress import Progress
from orchestrator.schemas import MediaRequest, TranscribeRequest

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: tuple[Status, ...] = ("succeeded", "failed", "cancelled")

PREFIX = "longscribe"
QUEUE = f"{PREFIX}:queue"
GROUP = "workers"
QUEUED = f"{PREFIX}:queued"
ACTIVE = f"{PREFIX}:active"
CANCEL_CHANNEL = f"{PREFIX}:cancel"
WEBHOOKS = f"{PREFIX}:webhooks"


def owner_queued_key(owner: str) -> str:
    """The waiting jobs of one API key (its `key_id`), a subset of QUEUED: kept in step wherever a job
    leaves (or re-enters) QUEUED. Submit counts only ids still in QUEUED, so a missed SREM heals itself."""
    return f"{PREFIX}:owner:{owner}:queued"


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def events_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:events"


def chunks_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:chunks"


def result_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:result"


def staged_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:result:staged"


def webhook_lease_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:webhook-lease"


def all_keys(job_id: str) -> list[str]:
    return [job_key(job_id), events_key(job_id), chunks_key(job_id), result_key(job_id)]


class JobRequest(TranscribeRequest):
    """POST /v1/jobs body: the /v1/transcribe body, plus where to say it is done."""

    webhook_url: str | None = Field(None, description="http(s) URL that gets the finished job, signed")


class JobSpec(BaseModel):
    """What a worker needs to run a job: the media (a URL or an upload) and its params, and the webhook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request: MediaRequest
    webhook_url: str | None = None
    # who made it: the id of the API key (never the key itself), "" when the service runs without auth;
    # only this key (or an admin key) may see, follow, fetch or cancel the job
    owner: str = ""


@dataclass(frozen=True)
class JobEvent:
    """One entry of a job's event log: `id` is its Redis stream id (the SSE id), `event` its name."""

    id: str
    event: str
    data: dict[str, Any]


def links(job_id: str) -> dict[str, str]:
    base = f"/v1/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "transcript": f"{base}/transcript"}


def added_segments(progress: Progress) -> list[dict[str, Any]]:
    """The segments a report settled in the finished prefix: a bounded delta for the `chunk` event."""
    return [s.model_dump(mode="json", exclude_none=True) for s in progress.added]


def loads(raw: str | None) -> Any:
    return json.loads(raw) if raw else None


Entry = tuple[str, dict[str, str]]  # a stream entry: its id and fields


def text_hash(found: Any) -> dict[str, str]:
    """HGETALL's answer from a client that decodes responses."""
    return cast(dict[str, str], found)


def stream_entries(found: Any) -> list[Entry]:
    """XREAD / XREADGROUP / XAUTOCLAIM entries (decoded), in order, from every stream read."""
    return [(str(entry_id), dict(fields)) for _, batch in found or [] for entry_id, fields in batch]

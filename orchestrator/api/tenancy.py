"""Tenants: whose job it is (the one check every /v1/jobs/{id} route makes), and each key's open event streams.

A job belongs to the key that made it (`JobSpec.owner`, the key's id). To
any other key, admins aside, it does not exist: the same 404, with the same
body, as an id that never was, so an id cannot be probed for.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from orchestrator.api.auth import Caller
from orchestrator.errors import JobNotFound, Overloaded
from orchestrator.jobs.store import JobStore

# a job id is secrets.token_urlsafe(12): 16 characters of this alphabet. Anything else is not looked up:
# `<id>:events` or `<id>:result` would name a stream or string key, and Redis's WRONGTYPE (a 503) would
# tell that the job exists, and with `:result` that it succeeded
JOB_ID = re.compile(r"[A-Za-z0-9_-]{16}")


def owner_of(fields: dict[str, str]) -> str:
    """The key id that made the job (from its hash); "" for a job made without auth."""
    return str(json.loads(fields["spec"]).get("owner", ""))


async def owned(store: JobStore, job_id: str, caller: Caller) -> dict[str, str]:
    """The job's hash, when `caller` may see it; JobNotFound, exactly as for an unknown id, when not."""
    if not JOB_ID.fullmatch(job_id):
        raise JobNotFound(f"no job {job_id!r}")
    fields = await store.fields(job_id)  # JobNotFound(f"no job {job_id!r}") for an unknown id
    if not caller.may_see(owner_of(fields)):
        raise JobNotFound(f"no job {job_id!r}")
    return fields


@dataclass
class StreamLimit:
    """Event streams each key holds open on this orchestrator; beyond `per_key` (0: no limit) a 429."""

    per_key: int
    retry_after_s: int
    open: dict[str, int] = field(default_factory=dict)

    @contextlib.contextmanager
    def hold(self, caller: Caller) -> Iterator[None]:
        """One stream of `caller`'s for as long as the block runs, however it ends (Overloaded when full)."""
        if not caller.limited or not self.per_key:
            yield
            return
        key = caller.key_id
        if self.open.get(key, 0) >= self.per_key:
            raise Overloaded(
                f"this API key already follows {self.per_key} event streams on this server "
                f"(max_event_streams_per_key); close one, or retry in {self.retry_after_s} s",
                retry_after_s=self.retry_after_s,
            )
        self.open[key] = self.open.get(key, 0) + 1
        try:
            yield
        finally:
            self.open[key] -= 1
            if not self.open[key]:
                del self.open[key]

"""Accepting a job: the fleet's queue limit and its owner's, checked and the job written in one step.

One Lua script does it, so Redis runs it as one command: two orchestrators
taking the last free place at once cannot both have it, and neither can
twenty requests of one key racing for its last three places. The owner's
count is the members of its set (`owner_queued_key`) that are still in the
fleet's QUEUED set; stale members are dropped on the way, so a missed SREM
elsewhere can never hold a key's queue full for good.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as redis

from orchestrator.errors import Overloaded
from orchestrator.jobs.records import ACTIVE, QUEUE, QUEUED, JobSpec, events_key, job_key, owner_queued_key

# KEYS: QUEUED, the owner's queued set, ACTIVE, the job's hash, its events, the queue stream
# ARGV: mode (check | submit), fleet limit, owner limit (0: none), owner ("": no per-owner set),
#       job id, spec JSON, created (epoch s), the `queued` event's data
# -> {"ok", 0} or {"fleet" | "owner", the count that is full}
SUBMIT_LUA = """
if ARGV[1] == 'submit' and redis.call('EXISTS', KEYS[4]) == 1 then
  return {'ok', 0}  -- sent again after a lost reply: it is in, once
end
local waiting = redis.call('SCARD', KEYS[1])
if waiting >= tonumber(ARGV[2]) then
  return {'fleet', waiting}
end
if ARGV[4] ~= '' then
  local mine = 0
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if redis.call('SISMEMBER', KEYS[1], id) == 1 then
      mine = mine + 1
    else
      redis.call('SREM', KEYS[2], id)
    end
  end
  local limit = tonumber(ARGV[3])
  if limit > 0 and mine >= limit then
    return {'owner', mine}
  end
end
if ARGV[1] ~= 'submit' then
  return {'ok', 0}
end
local id = ARGV[5]
redis.call('HSET', KEYS[4], 'spec', ARGV[6], 'status', 'queued', 'created', ARGV[7], 'attempts', 0)
redis.call('SADD', KEYS[1], id)
if ARGV[4] ~= '' then
  redis.call('SADD', KEYS[2], id)
end
redis.call('SADD', KEYS[3], id)
redis.call('XADD', KEYS[5], '*', 'event', 'status', 'data', ARGV[8])
redis.call('XADD', KEYS[6], '*', 'job', id)
return {'ok', 0}
"""


@dataclass(frozen=True)
class QueueLimits:
    """Jobs waiting to start: across the fleet (max_queued_jobs) and per API key (0: no limit)."""

    fleet: int
    per_owner: int
    retry_after_s: int


async def check_room(client: redis.Redis, owner: str, limits: QueueLimits) -> None:
    """Overloaded when a job of `owner` would be refused now (the cheap look before an upload is read)."""
    await _run(client, "check", owner, limits, "", "")


async def submit(client: redis.Redis, spec: JobSpec, limits: QueueLimits) -> str:
    """Queue the job and return its id; Overloaded (naming the limit) when the fleet's or its owner's queue is full."""
    job_id = secrets.token_urlsafe(12)
    await _run(client, "submit", spec.owner, limits, job_id, spec.model_dump_json())
    return job_id


async def _run(client: redis.Redis, mode: str, owner: str, limits: QueueLimits, job_id: str, spec: str) -> None:
    script = client.register_script(SUBMIT_LUA)  # EVALSHA, loaded once per Redis (and again after a restart)
    keys = [QUEUED, owner_queued_key(owner), ACTIVE, job_key(job_id), events_key(job_id), QUEUE]
    args: list[str | int | float] = [
        mode,
        limits.fleet,
        limits.per_owner,
        owner,
        job_id,
        spec,
        time.time(),
        json.dumps({"status": "queued"}),
    ]
    verdict, count = await script(keys=keys, args=args)
    retry = limits.retry_after_s
    if verdict == "fleet":
        raise Overloaded(
            f"{count} jobs are waiting to start across the service (max_queued_jobs); retry in {retry} s",
            retry_after_s=retry,
        )
    if verdict == "owner":
        raise Overloaded(
            f"this API key already has {count} jobs waiting to start (max_queued_jobs_per_key); "
            f"retry in {retry} s, or once one of them has started",
            retry_after_s=retry,
        )

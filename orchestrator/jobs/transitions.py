"""Every change of a job's state, each one Lua script: atomic, owned, idempotent, and bounded in time.

A worker holds a job through its `Lease`: the job's queue entry, pending at
the worker's consumer. Each script that a worker runs first checks that the
job's hash still exists (Redis may have lost it: no persistence, FLUSHALL, a
promoted replica; a write then must not recreate a partial hash that lives
forever) and that the entry is still pending at this consumer (another worker
may have taken the job over). Each can be sent again after a lost reply
(redis-py retries a command when the connection drops) without doing
anything twice: admission is keyed on the run, progress on its sequence
number, the end and the hand-back on the job's status and the lease. A job
lives until it ends, queued or running, however long that takes (a dead
worker's job may wait hours for a free slot); its end gives all its keys the
expiry, and a job whose hash Redis lost is dropped from every set that
counts it, so nothing of an ended or lost job lives forever.

Outcomes, as the scripts answer them:
    ok        done (or had been done by this very call, sent again)
    gone      the job's hash is no longer in Redis
    finished  the job had already ended (here or elsewhere)
    lost      the lease is another worker's now
    cancel    (admit, renew) a cancel is asked for
    exhausted (admit) started too often
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import redis.asyncio as redis

from orchestrator.jobs.records import (
    ACTIVE,
    CANCEL_CHANNEL,
    GROUP,
    QUEUE,
    QUEUED,
    WEBHOOKS,
    all_keys,
    job_key,
    owner_queued_key,
    staged_key,
)

Outcome = Literal["ok", "gone", "finished", "lost", "cancel", "exhausted", "queued", "running", "unstaged"]


@dataclass(frozen=True)
class Lease:
    """A job as one worker holds it: its queue entry, pending at the worker's consumer."""

    job_id: str
    entry_id: str
    consumer: str
    owner: str = ""  # the job's owner (its spec's): whose queued jobs it counts in

    def keys(self) -> list[str]:
        """KEYS of every script below, in this order."""
        # the job's own keys first (1-4: what expire_all and persist_all touch), then the fleet's
        return [*all_keys(self.job_id), QUEUE, QUEUED, owner_queued_key(self.owner), ACTIVE, WEBHOOKS,
                staged_key(self.job_id)]  # fmt: skip

    def args(self, ttl_s: float, *more: Any) -> list[Any]:
        """ARGV: the job, the expiry, the lease; then the script's own."""
        return [self.job_id, int(ttl_s), GROUP, self.entry_id, self.consumer, *more]


# Every script but the last two starts with these helpers.
# KEYS: 1 job, 2 events, 3 chunks, 4 result, 5 queue, 6 queued, 7 owner's queued, 8 active, 9 webhooks,
# 10 the result being written
# ARGV: 1 job id, 2 ttl, 3 group, 4 entry, 5 consumer, then each script's own from 6
_COMMON = """
local function finished(status)
  return status == 'succeeded' or status == 'failed' or status == 'cancelled'
end
local function owned()
  if ARGV[4] == '' then return false end
  local p = redis.pcall('XPENDING', KEYS[5], ARGV[3], ARGV[4], ARGV[4], 1)
  if type(p) ~= 'table' or p.err or #p == 0 then return false end
  return p[1][2] == ARGV[5]
end
local function drop_entry()
  if ARGV[4] ~= '' then
    redis.pcall('XACK', KEYS[5], ARGV[3], ARGV[4])
    redis.pcall('XDEL', KEYS[5], ARGV[4])
  end
end
local function expire_all()
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[2])) end
end
-- a job lives until it ends, however long it waits or runs (a dead worker's job may wait for a free
-- slot for hours): only an ended job's record expires
local function persist_all()
  for i = 1, 4 do redis.call('PERSIST', KEYS[i]) end
end
local function forget()
  -- the job's record is gone (lost by Redis, or expired): nothing of it may stay counted
  drop_entry()
  redis.call('SREM', KEYS[6], ARGV[1])
  redis.call('SREM', KEYS[7], ARGV[1])
  redis.call('SREM', KEYS[8], ARGV[1])
end
local function event(name, data)
  redis.call('XADD', KEYS[2], '*', 'event', name, 'data', data)
end
"""

# ARGV 6 worker name, 7 now, 8 max attempts
ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then forget() return 'gone' end
local status = redis.call('HGET', KEYS[1], 'status')
if finished(status) then drop_entry() return 'finished' end
if not owned() then return 'lost' end
-- the lease starts now: an admission slower than a lease must not look stale, to us or anyone
redis.call('XCLAIM', KEYS[5], ARGV[3], ARGV[5], 0, ARGV[4], 'JUSTID')
local run = ARGV[4] .. '/' .. ARGV[5]
if status == 'running' and redis.call('HGET', KEYS[1], 'run') == run then return 'ok' end
if redis.call('HGET', KEYS[1], 'cancel') then return 'cancel' end
if redis.call('HINCRBY', KEYS[1], 'attempts', 1) > tonumber(ARGV[8]) then return 'exhausted' end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[6], 'started', ARGV[7], 'run', run, 'reported', 0)
redis.call('SREM', KEYS[6], ARGV[1])
redis.call('SREM', KEYS[7], ARGV[1])
event('status', '{"status": "running"}')
persist_all()
return 'ok'
"""

# ARGV 6 sequence number of the report in this run, 7 progress JSON, 8 the chunk event's data
PROGRESS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if finished(redis.call('HGET', KEYS[1], 'status')) then return 'finished' end
if not owned() then return 'lost' end
if tonumber(redis.call('HGET', KEYS[1], 'reported') or '0') >= tonumber(ARGV[6]) then return 'ok' end
redis.call('HSET', KEYS[1], 'progress', ARGV[7], 'reported', ARGV[6])
event('chunk', ARGV[8])
persist_all()
return 'ok'
"""

# ARGV 6 chunk index, 7 the encoded ChunkPart
CHECKPOINT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if not owned() then return 'lost' end
redis.call('HSET', KEYS[3], ARGV[6], ARGV[7])
persist_all()
return 'ok'
"""

RENEW = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if finished(redis.call('HGET', KEYS[1], 'status')) then return 'finished' end
if not owned() then return 'lost' end
redis.call('XCLAIM', KEYS[5], ARGV[3], ARGV[5], 0, ARGV[4], 'JUSTID')
persist_all()
if redis.call('HGET', KEYS[1], 'cancel') then return 'cancel' end
return 'ok'
"""

HAND_BACK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if finished(redis.call('HGET', KEYS[1], 'status')) then return 'finished' end
if not owned() then return 'lost' end
redis.call('HSET', KEYS[1], 'status', 'queued', 'worker', '')
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('SADD', KEYS[6], ARGV[1])
redis.call('SADD', KEYS[7], ARGV[1])
redis.call('XADD', KEYS[5], '*', 'job', ARGV[1])
drop_entry()
event('status', '{"status": "queued"}')
persist_all()
return 'ok'
"""

# How long an ended job's checkpoints outlive it. A GET of the running job writes its partial from them a
# chunk at a time (never whole), and a job ending meanwhile must not cut that answer short; a minute is
# far more than writing ten hours' partial takes. Redis holds them that much longer, then frees them.
CHECKPOINT_GRACE_S = 60

# ARGV 6 status, 7 now, 8 error JSON, 9 progress JSON, 10 webhook JSON, 11 the end event's data,
# 12 '1': the transcript is staged (KEYS[10]) ('' for none of each), 13 '1': the lease must hold; '0': the job
# must be queued. 'unstaged': the staged transcript is gone (Redis lost it): write it again
FINISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
local status = redis.call('HGET', KEYS[1], 'status')
if finished(status) then drop_entry() return 'finished' end
if ARGV[13] == '1' and not owned() then return 'lost' end
if ARGV[13] == '0' and status ~= 'queued' then return status end
if ARGV[12] == '1' and redis.call('EXISTS', KEYS[10]) == 0 then return 'unstaged' end
redis.call('HSET', KEYS[1], 'status', ARGV[6], 'finished', ARGV[7])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'progress', ARGV[9]) end
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[1], 'webhook', ARGV[10])
  redis.call('SADD', KEYS[9], ARGV[1])
end
if ARGV[12] == '1' then redis.call('RENAME', KEYS[10], KEYS[4]) end
redis.call('SREM', KEYS[6], ARGV[1])
redis.call('SREM', KEYS[7], ARGV[1])
redis.call('SREM', KEYS[8], ARGV[1])
event('end', ARGV[11])
drop_entry()
expire_all()
-- the finished chunks stay a little: a poll that began writing the running job's partial from them finishes it
redis.call('EXPIRE', KEYS[3], math.min(tonumber(ARGV[2]), CHECKPOINT_GRACE_S))
return 'ok'
""".replace("CHECKPOINT_GRACE_S", str(CHECKPOINT_GRACE_S))

# KEYS 1 job; ARGV 1 job id, 2 the channel
FLAG_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
redis.call('HSET', KEYS[1], 'cancel', '1')
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 'ok'
"""

# KEYS 1 job, 2 webhooks; ARGV 1 job id, 2 the webhook's state JSON, 3 '1': delivered or given up
RECORD_WEBHOOK = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) return 'gone' end
redis.call('HSET', KEYS[1], 'webhook', ARGV[2])
if ARGV[3] == '1' then redis.call('SREM', KEYS[2], ARGV[1]) end
return 'ok'
"""


@dataclass
class Scripts:
    """The scripts above, registered on one client (EVALSHA; loaded again after a Redis restart)."""

    admit: Any
    progress: Any
    checkpoint: Any
    renew: Any
    hand_back: Any
    finish: Any
    flag_cancel: Any
    record_webhook: Any

    @classmethod
    def on(cls, client: redis.Redis) -> Scripts:
        texts = (ADMIT, PROGRESS, CHECKPOINT, RENEW, HAND_BACK, FINISH, FLAG_CANCEL, RECORD_WEBHOOK)
        return cls(*(client.register_script(_COMMON + text) for text in texts))  # each with the helpers


async def run(script: Any, lease: Lease, ttl_s: float, *more: Any) -> Outcome:
    """One script for `lease`; its outcome."""
    answer = await script(keys=lease.keys(), args=lease.args(ttl_s, *more))
    return cast(Outcome, answer.decode() if isinstance(answer, bytes) else str(answer))


async def flag_cancel(scripts: Scripts, job_id: str) -> Outcome:
    answer = await scripts.flag_cancel(keys=[job_key(job_id)], args=[job_id, CANCEL_CHANNEL])
    return cast(Outcome, str(answer))


async def record_webhook(scripts: Scripts, job_id: str, state: str, done: bool) -> Outcome:
    answer = await scripts.record_webhook(keys=[job_key(job_id), WEBHOOKS], args=[job_id, state, "1" if done else "0"])
    return cast(Outcome, str(answer))

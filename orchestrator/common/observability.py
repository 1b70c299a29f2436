"""Prometheus metrics, request and job ids, and logs that carry them.

Every request gets an id (the caller's `X-Request-Id` when it is a sane one,
else a new one), sent back in the answer; every job runs under its job id.
Both live in contextvars, so every log line of that request or job names it
(text and JSON alike), a task started on its behalf inherits it (asyncio copies
the context when a task is created), and Triton gets it as the inference
request id: one transcription can be followed from the edge to the model.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
JOB_ID: contextvars.ContextVar[str] = contextvars.ContextVar("job_id", default="")
REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID = 128  # a caller's id longer than this is replaced, not trusted into logs
# what a caller's id may hold: UUIDs, ULIDs, hex, base64 and the usual trace ids all fit; no spaces,
# quotes or control characters to forge or break a log line
SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:/+=@-]{{1,{MAX_REQUEST_ID}}}")
# seconds from a request's arrival to the end of its answer: a probe takes milliseconds, a synchronous
# transcription minutes, an event stream as long as its job (up to request_timeout_sec's hour)
REQUEST_BUCKETS_S = (0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
JOB_ENDS = ("succeeded", "failed", "cancelled")  # jobs_total's statuses, shown at 0 from the start
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # the route label of a path no route matches: any URL, one label


def new_request_id(offered: str | None) -> str:
    """The caller's id when it is sane (bounded, safe characters), else a new one (32 hex digits)."""
    if offered and SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def job_context(job_id: str) -> contextvars.Context:
    """A copy of the current context with `job_id` set: run a job's task in it
    (`asyncio.create_task(..., context=job_context(id))`), and its logs, the tasks it starts and its
    Triton calls all carry the job's id."""
    context = contextvars.copy_context()
    context.run(JOB_ID.set, job_id)
    return context


def trace_id() -> str:
    """The id Triton gets as the inference request id: the job's, else the request's ("" outside both)."""
    return JOB_ID.get() or REQUEST_ID.get()


def log_ids() -> dict[str, str]:
    """The ids a log line written now carries: request_id, job_id, those that are set."""
    ids = {"request_id": REQUEST_ID.get(), "job_id": JOB_ID.get()}
    return {name: value for name, value in ids.items() if value}


def method_label(method: str) -> str:
    """The method as a label; a made-up one (aiohttp takes any token) is `other`: a bounded label."""
    return method if method in HTTP_METHODS else "other"


def status_class(status: int) -> str:
    """404 -> "4xx": a bounded label."""
    return f"{status // 100}xx"


@dataclass
class Metrics:
    """One registry per app, so tests and several apps in one process do not share counts."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # the queue users wait in, asked at each scrape; the app sets it (Redis holds the fleet's queue)
    count_queued_jobs: Callable[[], Awaitable[int]] | None = None
    # Triton's cumulative (queue microseconds, requests) per (endpoint, model) at the last scrape
    triton_seen: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "longscribe_requests", "Requests by route and outcome (HTTP status)", ["route", "status"], registry=r
        )
        # route: the route's pattern (/v1/jobs/{job_id}), never the URL, so the label stays bounded
        self.request_seconds = Histogram(
            "longscribe_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer (a stream's whole life), by route "
            "pattern, method and status class (2xx..5xx; `cancelled`: the client went away first)",
            ["route", "method", "status"],
            buckets=REQUEST_BUCKETS_S,
            registry=r,
        )
        self.jobs = Counter(
            "longscribe_jobs",
            "Jobs ended, by status; counted once per job in the fleet, by the process whose write ended it",
            ["status"],
            registry=r,
        )
        for status in JOB_ENDS:
            self.jobs.labels(status)
        # CPU, memory, open files, start time (process_*); Python's version (python_info); GC (python_gc_*)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.audio_seconds = Counter("longscribe_audio_seconds", "Seconds of media transcribed", registry=r)
        self.speedup = Histogram(
            "longscribe_speedup",
            "Media seconds per wall second, per request",
            buckets=(1, 5, 10, 20, 40, 60, 80, 120, 200, 400, 1000),
            registry=r,
        )
        self.chunk_seconds = Histogram(
            "longscribe_chunk_inference_seconds",
            "Triton time (queue + compute) per macro chunk",
            buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320),
            registry=r,
        )
        self.in_flight = Gauge("longscribe_requests_in_flight", "Transcriptions running or queued", registry=r)
        self.jobs_in_flight = Gauge("longscribe_jobs_in_flight", "Jobs not yet finished", registry=r)
        self.endpoint_up = Gauge(
            "longscribe_triton_endpoint_up", "1 when the endpoint has its models ready", ["endpoint"], registry=r
        )
        self.loop_lag = Histogram(
            "longscribe_event_loop_lag_seconds",
            "How late the loop-lag probe's timer fired: time the event loop was blocked",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.loop_lag_max = Gauge(
            "longscribe_event_loop_lag_max_seconds", "The worst event-loop block seen since start", registry=r
        )
        self.worst_lag_s = 0.0
        self.jobs_queued = Gauge(
            "longscribe_jobs_queued", "Jobs and requests accepted, waiting for a slot: what users wait in", registry=r
        )
        # Triton's own counters, read over gRPC at each scrape: rate(queue) / rate(inferences) is the
        # mean time a request waits in that model's queue (Triton's nv_inference_queue_duration_us)
        self.triton_queue_us = Counter(
            "longscribe_triton_queue_duration_us",
            "Microseconds requests waited in Triton's queue, per endpoint and model",
            ["endpoint", "model"],
            registry=r,
        )
        self.triton_inferences = Counter(
            "longscribe_triton_inferences",
            "Requests Triton executed successfully, per endpoint and model",
            ["endpoint", "model"],
            registry=r,
        )

    async def probe_loop_lag(self, interval_s: float) -> None:
        """Forever: sleep `interval_s` and record how late the wake-up came. A late timer means some
        callback held the loop that long, and every stream and request waited with it."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval_s)
            lag_s = max(0.0, time.monotonic() - before - interval_s)
            self.loop_lag.observe(lag_s)
            if lag_s > self.worst_lag_s:
                self.worst_lag_s = lag_s
                self.loop_lag_max.set(lag_s)

    def observe_triton(self, stats: Mapping[tuple[str, str], tuple[int, int]]) -> None:
        """Advance the Triton counters to `stats`; a restarted Triton (counts went down) counts from zero."""
        for key, (queue_us, inferences) in stats.items():
            seen_us, seen_n = self.triton_seen.get(key, (0, 0))
            if queue_us < seen_us or inferences < seen_n:
                seen_us, seen_n = 0, 0
            self.triton_queue_us.labels(*key).inc(queue_us - seen_us)
            self.triton_inferences.labels(*key).inc(inferences - seen_n)
            self.triton_seen[key] = (queue_us, inferences)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and job_id when set, and the
    exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **log_ids(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time logger LEVEL request_id=... job_id=... message`: the ids that are set, before the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s%(ids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.ids = "".join(f" {name}={value}" for name, value in log_ids().items())
        return super().format(record)


def configure_logs(log_format: Literal["text", "json"], level: int) -> None:
    """The process's logs, to stderr, in `log_format` (the log_format setting), with the ids of each line."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)

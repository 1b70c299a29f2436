"""Prometheus metrics, request ids and JSON logs.

Every request gets an id (the caller's `X-Request-Id`, else a new one), sent
back in the answer, written in every log line of that request, and passed to
Triton as the inference request id, so one transcription can be followed from
the edge to the model.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID = 128  # a caller's id longer than this is replaced, not trusted into logs


def new_request_id(offered: str | None) -> str:
    if offered and len(offered) <= MAX_REQUEST_ID and offered.isprintable():
        return offered
    return uuid.uuid4().hex


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
    """One JSON object per line: time, level, logger, message, request id, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def use_json_logs(level: int) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)

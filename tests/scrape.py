"""One value from a service's Prometheus /metrics, parsed by prometheus_client's own reader."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

# the orchestrator's series the cancel tests read (orchestrator/common/observability.py)
CHUNKS = "longscribe_chunk_inference_seconds_count"  # macro chunks inferred, one sample per chunk
REQUEST_SECONDS = "longscribe_http_request_duration_seconds_count"  # requests ended, status="cancelled": hung up
AUDIO_SECONDS = "longscribe_audio_seconds_total"  # media seconds of requests answered to the end
IN_FLIGHT = "longscribe_requests_in_flight"  # transcriptions running or queued in this process
JOBS_ENDED = "longscribe_jobs_total"  # jobs ended, by status
# a stopped job or request must show no new chunk for this long: over twice a 30 s chunk's inference on
# tiny.en here (about 1 s alone, more on a loaded machine), so a job still running would show one
STOPPED_WINDOW_S = 3.0


def sample(text: str, name: str, **labels: str) -> float:
    """The value of sample `name` whose labels include `labels`; 0.0 when no such sample is exposed yet."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def metric(session: aiohttp.ClientSession, base: str, name: str, **labels: str) -> float:
    """`sample` of `base`/metrics as scraped now."""
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200, await response.text()
        return sample(await response.text(), name, **labels)


def metric_where(
    session: aiohttp.ClientSession, base: str, name: str, holds: Callable[[float], bool], **labels: str
) -> Callable[[], Awaitable[bool]]:
    """A predicate for polling.wait_until: whether `holds(metric(...))` as scraped when asked."""

    async def check() -> bool:
        return holds(await metric(session, base, name, **labels))

    return check

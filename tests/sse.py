"""Job events as a client sees them, read with a real SSE parser."""

from __future__ import annotations

import httpx
from httpx_sse import aconnect_sse


async def read_events(
    http: httpx.AsyncClient,
    url: str,
    last_id: str | None = None,
    stop_after: int | None = None,
    seen: list[tuple[str, str, str]] | None = None,
) -> list[tuple[str, str, str]]:
    """(id, event, data) as sent, until `end` or `stop_after` events; then the client hangs up.

    `seen`: a list to fill as events arrive, for a test to poll what the client has received so far."""
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    seen = [] if seen is None else seen
    async with aconnect_sse(http, "GET", url, headers=headers) as source:
        async for event in source.aiter_sse():
            if not event.data:
                continue  # a keep-alive comment, which httpx-sse dispatches as an empty event
            seen.append((event.id, event.event, event.data))
            if event.event == "end" or len(seen) == stop_after:
                break
    return seen

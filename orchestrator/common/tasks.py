"""Stopping background tasks for sure.

redis-py (8.1) swallows a cancel that lands while it sets up a connection,
and a loop task that swallowed its cancel runs on: one `cancel()` and a
`gather` then wait forever, and a shutdown hangs. So the cancel is repeated
until every task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

AGAIN_S = 0.2  # how long a cancelled task gets before it is cancelled again


async def cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel every task, again and again, until all have ended; their results and errors are dropped."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=AGAIN_S)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit

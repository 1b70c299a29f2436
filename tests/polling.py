"""Waiting on observable state instead of sleeping: a test says what it waits for and how long it may take."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

POLL_S = 0.05  # how often to look again: paces the loop, assumes nothing
T = TypeVar("T")


async def wait_until(predicate: Callable[[], T | Awaitable[T]], timeout_s: float, what: str) -> T:
    """Ask `predicate` (plain or async) until it returns something truthy; return that. Fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = predicate()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found  # type: ignore[return-value]
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}"
        await asyncio.sleep(POLL_S)


async def steady(read: Callable[[], Awaitable[T]], window_s: float) -> tuple[T, T]:
    """`read()` now and again after `window_s`: what a test compares to show something stopped changing."""
    before = await read()
    await asyncio.sleep(window_s)  # the window is what is asserted over, not a guess that work is done
    return before, await read()

"""Long-lived child services (tritonserver, redis-server): their log forwarded, and a stop in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator

STOP_GRACE_S = 15.0  # SIGTERM (Triton unloads, Redis flushes its append-only file), then SIGKILL


async def _forward(stream: asyncio.StreamReader, log: logging.Logger) -> None:
    async for line in stream:
        log.info("%s", line.decode(errors="replace").rstrip())


@contextlib.asynccontextmanager
async def supervised(proc: asyncio.subprocess.Process, log: logging.Logger) -> AsyncIterator[None]:
    """Forward the child's merged stdout/stderr to `log` while the block runs; then stop the child.

    The child must lead its own process group (start_new_session=True): a
    child that ignores SIGTERM is killed with its whole group (Triton's
    backend stubs with it).
    """
    assert proc.stdout is not None, "start the child with stdout=PIPE, stderr=STDOUT"
    forward = asyncio.create_task(_forward(proc.stdout, log))
    try:
        yield
    finally:
        await stop(proc)
        forward.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forward


async def stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL to the process group after STOP_GRACE_S; always reaped."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), STOP_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

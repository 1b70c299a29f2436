"""Run a child process from asyncio and always reap it, also on cancel or timeout."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from orchestrator.errors import ToolMissing


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes

    def last_error_line(self) -> str:
        """FFmpeg's tools put the reason for a failure on their last stderr line."""
        lines = self.stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "unknown error"


async def run(args: list[str], timeout_s: float) -> Completed:
    """Run `args` to completion; on timeout raise TimeoutError, the child killed and reaped."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise ToolMissing(f"{args[0]} is not installed or not on PATH") from exc
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # shielded: a second cancel must not leave a zombie behind
            await asyncio.shield(proc.wait())
    return Completed(proc.returncode or 0, stdout, stderr)

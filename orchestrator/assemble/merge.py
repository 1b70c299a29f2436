"""Chunk results -> one ordered, non-overlapping transcript in media time: the orchestrator's side of assembly.

The rules live in `longscribe_core.assembly`, shared with the micro chunker;
this module only says where each macro chunk lies.
"""

from __future__ import annotations

from collections.abc import Sequence

from longscribe_core import assembly
from longscribe_core.assembly import ChunkSpan, TimedText, join_text
from longscribe_core.segments import ChunkResult
from orchestrator.plan.macro import MacroChunk

__all__ = ["TimedText", "join_text", "merge_chunk", "merge_chunks", "span"]


def span(chunk: MacroChunk) -> ChunkSpan:
    return ChunkSpan(chunk.index, chunk.start_s, chunk.end_s, chunk.offset_s, chunk.in_speech)


def merge_chunks(parts: Sequence[tuple[MacroChunk, ChunkResult]], duration_s: float) -> list[TimedText]:
    """Each chunk's segments shifted to media time, each word kept once, in order, joins recorded."""
    return assembly.assemble_chunks([(span(chunk), result) for chunk, result in parts], duration_s)


def merge_chunk(
    merged: list[TimedText], chunk: MacroChunk, result: ChunkResult, first: bool, last: bool, duration_s: float
) -> None:
    """Append one chunk's segments to `merged` (`assembly.append_chunk`); reads only merged[-1]."""
    assembly.append_chunk(merged, span(chunk), result, first, last, duration_s)

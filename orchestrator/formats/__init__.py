"""Step 5, formats: the answer rendered as JSON, text, SRT or WebVTT, whole or in pieces."""

from orchestrator.formats.writers import CONTENT_TYPES, FORMATS, pieces, render, to_srt, to_vtt

__all__ = ["CONTENT_TYPES", "FORMATS", "pieces", "render", "to_srt", "to_vtt"]

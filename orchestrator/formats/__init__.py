"""Step 5, formats: the answer rendered as JSON, text, SRT or WebVTT."""

from orchestrator.formats.writers import CONTENT_TYPES, FORMATS, render, to_srt, to_vtt

__all__ = ["CONTENT_TYPES", "FORMATS", "render", "to_srt", "to_vtt"]

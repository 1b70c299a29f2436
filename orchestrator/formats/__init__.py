"""Step 5, formats: the answer rendered as JSON, text, SRT, WebVTT or TSV, whole or in pieces."""

from orchestrator.formats.writers import CONTENT_TYPES, EXTENSIONS, FORMATS, pieces, render, to_srt, to_tsv, to_vtt

__all__ = ["CONTENT_TYPES", "EXTENSIONS", "FORMATS", "pieces", "render", "to_srt", "to_tsv", "to_vtt"]

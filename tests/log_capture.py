"""Log lines as an operator reads them: formatted as they are written, in both of the service's formats.

caplog keeps records and formats them later, after the request or job that wrote them has
ended and its ids are gone from the context: this handler formats each line at once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orchestrator.common.observability import JsonFormatter, TextFormatter


class Lines(logging.Handler):
    """Every line written while capturing, as JSON (parsed) and as text."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.json: list[dict[str, Any]] = []
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.json.append(json.loads(JsonFormatter().format(record)))
        self.text.append(TextFormatter().format(record))

    def containing(self, words: str) -> list[tuple[dict[str, Any], str]]:
        """The lines whose message contains `words`: (the JSON line, the text line)."""
        return [(j, t) for j, t in zip(self.json, self.text, strict=True) if words in j["message"]]


@contextmanager
def captured_logs() -> Iterator[Lines]:
    lines = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(lines)
    root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(lines)
        root.setLevel(level)

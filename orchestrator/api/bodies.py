"""Request bodies read within their limits: JSON of bounded size and depth, forms of bounded parts.

A form has at most `max_form_parts` parts, each field other than `file` at
most `max_form_field_bytes` (read in bounded pieces, never whole), and one
`file` part, streamed to a temporary file under `max_upload_bytes`. A field
the service reads comes once (`Form.one`). Whatever is refused, every file
saved so far is deleted before the answer goes.

JSON is checked for depth by a scan of its brackets outside strings before
it is parsed: the parser and validation recurse once per level, and a body
of 100,000 `[` would exhaust Python's stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from orchestrator.errors import BodyTooLarge, InvalidRequest, MalformedBody, UploadTooLarge
from orchestrator.jobs import uploads
from orchestrator.schemas import MAX_REFERENCE_CHARS, UploadedMedia
from orchestrator.settings import Settings

MAX_JSON_DEPTH = 32  # a request is 3 levels deep (body, params, a list); room to spare, far from the stack's limit
ON_LOOP_CHARS = 64 * 1024  # a JSON body up to this is checked and parsed on the loop (well under a millisecond)
READ_BYTES = 1 << 20  # an upload is written in pieces of this size
# lists, in OpenAI's form
REPEATABLE = frozenset(
    {
        "timestamp_granularities[]",
        "timestamp_granularities",
        "known_speaker_names[]",
        "known_speaker_names",
        "known_speaker_references[]",
        "known_speaker_references",
    }
)
# a known speaker's reference clip is a data URL of up to 10 s of audio: it may be larger than other fields
REFERENCE_FIELDS = frozenset({"known_speaker_references[]", "known_speaker_references"})
# a JSON string (escapes included), or one bracket: what the depth scan looks at. A string left
# unterminated runs to the end of the text (a lone `\` last included), and the quantifiers are
# possessive: a failed string match would restart at every later `"`, quadratic in the body
_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[{]|[\]}]', re.DOTALL)


def check_depth(text: str, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """MalformedBody when `text`'s brackets outside strings nest deeper than `limit`; linear, no recursion."""
    depth = 0
    for token in _TOKENS.finditer(text):
        first = text[token.start()]
        if first in "[{":
            depth += 1
            if depth > limit:
                raise MalformedBody(f"{what} is nested deeper than {limit} levels")
        elif first in "]}":
            depth -= 1


def loads(text: str, what: str) -> Any:
    """Parse JSON checked for depth first; not JSON is an InvalidRequest (422) naming `what`."""
    check_depth(text, what)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from exc


async def read_json(request: web.Request, max_bytes: int) -> Any:
    """The request's JSON body: over `max_bytes` (the app's client_max_size) a 413 with JSON, not HTML."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge(f"the body is over {max_bytes // (1 << 20)} MiB ({max_bytes} bytes)") from exc
    try:
        text = raw.decode(request.charset or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
    if len(text) > ON_LOOP_CHARS:  # scanning and parsing a large body takes up to ~0.1 s: off the loop
        return await asyncio.to_thread(loads, text, "the body")
    return loads(text, "the body")


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    upload: UploadedMedia | None = None

    def discard(self) -> None:
        """Delete the uploaded file, if any (its request failed, or is done with it)."""
        if self.upload is not None:
            with contextlib.suppress(OSError):
                self.upload.path.unlink(missing_ok=True)

    def one(self, name: str) -> str | None:
        """The field's value; sent twice, it is a 400 (which of the two would be a guess)."""
        values = self.fields.get(name)
        if values and len(values) > 1 and name not in REPEATABLE:
            raise MalformedBody(f"the form has {len(values)} `{name}` fields; send it once")
        return values[0] if values else None

    def all(self, *names: str) -> list[str]:
        return [v for name in names for v in self.fields.get(name, [])]

    def add(self, name: str, value: str, max_parts: int) -> None:
        if sum(map(len, self.fields.values())) + (self.upload is not None) >= max_parts:
            raise BodyTooLarge(f"the form has more than {max_parts} parts")
        self.fields.setdefault(name, []).append(value)


async def read_form(request: web.Request, settings: Settings) -> Form:
    """The form's fields, and its `file` part streamed to disk; nothing left behind on failure."""
    form = Form()
    if request.content_type != "multipart/form-data":  # a url and options only: a plain form
        if request.content_type != "application/x-www-form-urlencoded":
            raise InvalidRequest("send multipart/form-data (a `file`) or a form with `url`")
        try:
            posted = await request.post()
        except web.HTTPRequestEntityTooLarge as exc:  # aiohttp's own caps: 1 MiB, 1,000 fields
            raise BodyTooLarge(f"the form is too large: {exc.text}") from exc
        for name, value in posted.items():
            limit = max(settings.max_form_field_bytes, MAX_REFERENCE_CHARS if name in REFERENCE_FIELDS else 0)
            if len(str(value).encode()) > limit:
                raise BodyTooLarge(f"the form field `{name}` is over {settings.max_form_field_bytes} bytes")
            form.add(name, str(value), settings.max_form_parts)
        return form
    try:
        await _read_parts(request, form, settings)
    except (HttpProcessingError, ValueError, LookupError) as exc:  # a malformed body, header or charset
        form.discard()
        raise InvalidRequest(f"the multipart body could not be read: {exc}") from exc
    except BaseException:
        form.discard()
        raise
    return form


async def _read_parts(request: web.Request, form: Form, settings: Settings) -> None:
    reader = await request.multipart()
    parts = 0
    async for part in reader:
        parts += 1
        if parts > settings.max_form_parts:  # unnamed and nested parts count too
            raise BodyTooLarge(f"the form has more than {settings.max_form_parts} parts")
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.name == "file":
            if form.upload is not None:
                raise MalformedBody("the form has more than one `file` part; send one file per request")
            path = await _save(part, settings.upload_dir, settings.max_upload_bytes)
            form.upload = UploadedMedia(path=path, filename=part.filename or "")
        else:
            limit = max(settings.max_form_field_bytes, MAX_REFERENCE_CHARS if part.name in REFERENCE_FIELDS else 0)
            form.add(part.name, await _field(part, limit), settings.max_form_parts)


async def _field(part: BodyPartReader, max_bytes: int) -> str:
    """A field's text, read in pieces and refused past `max_bytes` (aiohttp's text() would take 1 MiB)."""
    data = bytearray()
    while chunk := await part.read_chunk(min(max_bytes + 1, READ_BYTES)):
        data.extend(chunk)
        if len(data) > max_bytes:
            raise BodyTooLarge(f"the form field `{part.name}` is over {max_bytes} bytes")
    return bytes(data).decode(part.get_charset(default="utf-8"))


async def _save(part: BodyPartReader, upload_dir: Path | None, max_bytes: int) -> Path:
    suffix = Path(part.filename or "").suffix[:16]  # FFmpeg probes content, the suffix only helps
    handle, name = tempfile.mkstemp(prefix=uploads.PREFIX, suffix=suffix, dir=upload_dir)
    path, size = Path(name), 0
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := await part.read_chunk(READ_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(f"the upload is over the limit of {max_bytes} bytes")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path

"""Before any work: the media URL must exist, hold bytes, and answer HTTP Range requests."""

from __future__ import annotations

from orchestrator.errors import MediaEmpty, MediaHttpError, MediaNotMedia, RangeNotSupported
from orchestrator.media.relay import MediaRelay

WEB_PAGE_TYPES = ("text/html", "application/xhtml+xml")
STATUS_HINTS = {
    401: "The media server wants credentials: use a public or pre-signed URL.",
    403: "The media server refused access: use a public or pre-signed URL.",
    404: "Nothing is at that URL: check the path and that the file was uploaded.",
    410: "The file was removed from the media server.",
}
SERVER_FAULT_HINT = "The media server failed; retry later, or check its logs if it is yours."


async def check_range_support(relay: MediaRelay, url: str) -> None:
    """Ask for the first byte; anything but 206 Partial Content is refused.

    FFmpeg seeks by Range requests: without them every macro chunk would read
    the file from byte 0.
    """
    async with await relay.fetch(url, {"Range": "bytes=0-0", "Accept-Encoding": "identity"}) as response:
        status = response.status
        content_type = response.content_type
        content_range = response.headers.get("Content-Range", "")
        length = response.content_length
    if content_type in WEB_PAGE_TYPES and status < 300:
        raise MediaNotMedia(f"media_url answered with a web page ({content_type}), not audio or video")
    if status == 206:
        return
    if status == 416 and content_range.endswith("/0") or status == 200 and length == 0:
        raise MediaEmpty("the file at media_url is empty (0 bytes)")
    if status >= 400:
        hint = STATUS_HINTS.get(status, SERVER_FAULT_HINT if status >= 500 else None)
        raise MediaHttpError(f"the media server answered HTTP {status} for media_url", hint=hint)
    raise RangeNotSupported(
        f"media server answered HTTP {status} to a Range request instead of 206: "
        "range requests are required so each chunk reads only its own bytes"
    )

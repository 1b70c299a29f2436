"""Before any work: the media URL must exist and answer HTTP Range requests."""

from __future__ import annotations

import aiohttp

from .errors import MediaHttpError, MediaUnreachable, RangeNotSupported


async def check_range_support(session: aiohttp.ClientSession, url: str, timeout_s: float) -> None:
    """Ask for the first byte; anything but 206 Partial Content is refused.

    FFmpeg seeks by Range requests: without them every macro chunk would read
    the file from byte 0.
    """
    try:
        async with session.get(
            url,
            headers={"Range": "bytes=0-0", "Accept-Encoding": "identity"},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            status = response.status
    except TimeoutError as exc:
        raise MediaUnreachable(f"media_url did not answer within {timeout_s:g} s") from exc
    except aiohttp.InvalidURL as exc:
        raise MediaUnreachable(f"media_url is not a valid URL: {exc}") from exc
    except aiohttp.ClientError as exc:
        raise MediaUnreachable(f"media_url could not be fetched: {exc}") from exc
    if status == 206:
        return
    if status >= 400:
        raise MediaHttpError(f"media server answered HTTP {status} for media_url")
    raise RangeNotSupported(
        f"media server answered HTTP {status} to a Range request instead of 206: "
        "range requests are required so each chunk reads only its own bytes"
    )

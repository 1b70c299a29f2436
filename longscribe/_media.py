"""What a caller may hand over as media, and how each goes to the service.

An http(s) URL is passed through (the service fetches it, as its allow-list
permits). Anything else is uploaded: a local path, a binary file object
(an open file, sys.stdin.buffer) or bytes, as the `file` part of a
multipart POST /v1/jobs. Nothing is served from the caller's machine: a
service refuses loopback media by default, and a remote one could not reach
it anyway.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Union

Media = Union[str, "os.PathLike[str]", IO[bytes], bytes]
URL_SCHEMES = ("http://", "https://")


def is_url(media: object) -> bool:
    return isinstance(media, str) and media.lower().startswith(URL_SCHEMES)


def display_name(media: Media) -> str:
    """A name for messages: the URL or path as given, or the file object's name."""
    if isinstance(media, (str, os.PathLike)):
        return os.fspath(media)
    if isinstance(media, bytes):
        return "<bytes>"
    name = getattr(media, "name", None)
    return name if isinstance(name, str) else "<file>"


def check(media: Media) -> None:
    """Refuse now what cannot be sent: a path that is not a file (FileNotFoundError), a text-mode file."""
    if is_url(media):
        return
    if isinstance(media, (str, os.PathLike)):
        if not Path(media).is_file():
            raise FileNotFoundError(f"no such file: {os.fspath(media)}")
    elif not isinstance(media, bytes) and "b" not in getattr(media, "mode", "b"):
        raise TypeError("open the file in binary mode ('rb') to upload it")


def request_kwargs(
    media: Media, params: dict[str, Any], extra: dict[str, Any], opened: list[IO[bytes]]
) -> dict[str, Any]:
    """httpx keyword arguments for POST /v1/jobs: JSON for a URL, a multipart upload otherwise.

    Files this opens are appended to `opened`, for the caller to close once sent."""
    if is_url(media):
        return {"json": {"media_url": media, "params": params, **extra}}
    if extra:
        raise ValueError(f"{', '.join(extra)}: only with a media URL (an upload takes params only)")
    if isinstance(media, (str, os.PathLike)):
        opened_file = open(media, "rb")  # noqa: SIM115 (closed by the caller, once sent)
        opened.append(opened_file)
        handle: IO[bytes] | bytes = opened_file
        filename = Path(media).name
    else:
        handle = media
        name = getattr(media, "name", None)
        filename = Path(name).name if isinstance(name, str) and not name.startswith("<") else "upload"
    return {
        "data": {"params": json.dumps(params)},
        "files": {"file": (filename, handle, "application/octet-stream")},
    }

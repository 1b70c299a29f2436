"""Every failure a caller can see, each with its HTTP status and a hint.

    LongscribeError                  500 internal
    ├── InvalidRequest               422 the body or its params are wrong
    ├── MediaError                   422 the media URL cannot be transcribed
    │   ├── MediaUnreachable             DNS, refused connection, timeout
    │   ├── MediaHttpError               the media server answered 4xx/5xx
    │   ├── RangeNotSupported            no 206 to `Range: bytes=0-0`
    │   ├── MediaUnreadable              FFmpeg finds no audio it can decode
    │   └── MediaTooLong                 over the configured limit
    ├── ToolMissing                  500 FFmpeg is not installed
    └── InferenceError               502 Triton failed on a chunk
        └── InferenceUnavailable     503 no Triton endpoint answers

Modules that talk to aiohttp, tritonclient or FFmpeg raise only these; the
app maps them to JSON in one place (`app.error_middleware`).
"""

from __future__ import annotations


class LongscribeError(Exception):
    status = 500
    code = "internal"
    hint = "Retry later; if it persists, report it with the time of the request."

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def to_json(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "hint": self.hint}}


class InvalidRequest(LongscribeError):
    status = 422
    code = "invalid_request"
    hint = 'Fix the request body: {"media_url": "https://...", "params": {...}}; see the README for the params.'


class MediaError(LongscribeError):
    status = 422
    code = "media_error"
    hint = "Check that media_url points to an audio or video file."


class MediaUnreachable(MediaError):
    code = "media_unreachable"
    hint = "Check the host name and that the server is reachable from the service."


class MediaHttpError(MediaError):
    code = "media_http_error"
    hint = "Check the URL in a browser or with curl; it must answer 200/206 with the media."


class RangeNotSupported(MediaError):
    code = "range_not_supported"
    hint = (
        "Serve the file from a server that honours HTTP Range requests (any static file server or object store does)."
    )


class MediaUnreadable(MediaError):
    code = "media_unreadable"
    hint = "The URL must point to audio or video with an audio stream FFmpeg can decode."


class MediaTooLong(MediaError):
    code = "media_too_long"
    hint = "Split the media or raise LONGSCRIBE_MAX_MEDIA_DURATION_SEC."


class ToolMissing(LongscribeError):
    code = "service_misconfigured"
    hint = "Install FFmpeg on the service's machine (apt-get install ffmpeg) or set LONGSCRIBE_FFMPEG_BIN."


class InferenceError(LongscribeError):
    status = 502
    code = "inference_failed"
    hint = "Retry; if it persists, check the Triton server's log."


class InferenceUnavailable(InferenceError):
    status = 503
    code = "inference_unavailable"
    hint = "Start Triton (`longscribe serve`) or check LONGSCRIBE_TRITON_GRPC_URLS."

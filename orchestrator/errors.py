"""Every failure a caller can see, each with its HTTP status and a hint.

    LongscribeError                  500 internal
    ├── InvalidRequest               422 the body or its params are wrong
    │   ├── MalformedBody                400 a body that cannot be read as sent: JSON nested too deep, a repeated part
    │   ├── InvalidWebhook               webhook_url is not an http(s) URL, or its host is private/loopback
    │   ├── InvalidTranscriptQuery       a transcript asked for in an unknown format or with bad line limits
    │   ├── TranslationUnsupported       translate on an English-only model (names a multilingual one)
    │   ├── DiarizationUnsupported       diarize on a service whose Triton has no speaker_encoder model
    │   └── SpeakerReferenceInvalid      a known speaker's reference clip is not 2-10 s of audio FFmpeg reads
    ├── Unauthorized                 401 no valid API key
    ├── JobNotFound                  404 no such job (or it expired)
    ├── ModelNotFound                404 no such model on this service (the answer names those there are)
    ├── JobConflict                  409 the job is not in a state that allows this (e.g. not finished)
    ├── UploadTooLarge               413 an upload over max_upload_bytes
    ├── BodyTooLarge                 413 a JSON body over 1 MiB, a form with too many parts or too big a field
    ├── Overloaded                   429 the queue is full (with Retry-After)
    ├── ShuttingDown                 503 the service is stopping
    ├── JobsUnavailable              503 the service runs without Redis: no jobs
    ├── JobStoreUnreachable          503 Redis does not answer (with Retry-After)
    ├── RequestTimeout               504 over the per-request limit
    ├── MediaError                   422 the media URL cannot be transcribed
    │   ├── MediaForbidden               private/loopback/metadata address, or a non-http redirect
    │   ├── MediaUnreachable             refused connection, timeout
    │   │   ├── MediaHostNotFound            the host does not resolve
    │   │   └── MediaConnectionLost          the server kept dropping the connection mid-read
    │   ├── MediaHttpError               the media server answered 4xx/5xx
    │   ├── RangeNotSupported            no 206 to `Range: bytes=0-0`
    │   ├── MediaEmpty                   a zero-length file
    │   ├── UploadMissing                an uploaded job's file is not on the disk of the worker that took it
    │   ├── MediaNotMedia                a web page, not audio or video
    │   ├── MediaUnreadable              FFmpeg finds no audio it can decode
    │   │   └── MediaNoAudio                 a container without an audio stream
    │   └── MediaTooLong                 over the configured limit
    ├── ToolMissing                  500 FFmpeg is not installed
    └── InferenceError               502 Triton failed on a chunk
        └── InferenceUnavailable     503 no Triton endpoint answers

Modules that talk to aiohttp, tritonclient or FFmpeg raise only these; the
app maps them to JSON in one place (`api.edge.error_middleware`); Redis's own
errors are mapped there too, to JobStoreUnreachable.
"""

from __future__ import annotations


class LongscribeError(Exception):
    status = 500
    code = "internal"
    hint = "Retry later; if it persists, report it with the time of the request."
    param: str | None = None  # the request field at fault, where known (OpenAI's routes report it as `param`)

    def __init__(self, message: str, hint: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        if param is not None:
            self.param = param

    def detail(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def to_json(self) -> dict[str, object]:
        return {"error": self.detail()}


class InvalidRequest(LongscribeError):
    status = 422
    code = "invalid_request"
    hint = 'Fix the request body: {"media_url": "https://...", "params": {...}}; see docs/api.md for the params.'


class MalformedBody(InvalidRequest):
    status = 400
    code = "malformed_body"
    hint = (
        "Send JSON nested at most 32 levels deep, and a form with one `file` part and each field once "
        "(timestamp_granularities[] may repeat)."
    )


class InvalidWebhook(InvalidRequest):
    code = "invalid_webhook"
    hint = (
        "Give webhook_url as an http(s) URL of a public host, without user or password. To deliver on a private "
        "network, list the host in LONGSCRIBE_ALLOWED_WEBHOOK_HOSTS on the service."
    )


class InvalidTranscriptQuery(InvalidRequest):
    hint = (
        "Ask for ?format=json, text, verbose_json, srt, vtt or tsv; srt and vtt also take max_line_width (1-1000 "
        "characters) and, with it, max_line_count (1-100 lines per cue)."
    )


class TranslationUnsupported(InvalidRequest):
    """`task: translate` on an English-only model (tiny.en, any `.en`): it has no task tokens to translate with.

    Refused when the request is read, before any media; OpenAI's routes answer it as 400."""

    code = "translation_unsupported"
    param = "model"
    hint = (
        "Translate with a multilingual model such as `base`: name it in params.model (OpenAI: `model`); "
        "GET /v1/models lists the models this service serves."
    )


class DiarizationUnsupported(InvalidRequest):
    """`diarize` asked of a service whose Triton serves no speaker encoder: refused before any media is read."""

    code = "diarization_unsupported"
    param = "diarize"
    hint = (
        "Leave diarize out (or false), or ask a service whose Triton serves the speaker_encoder model "
        "(LONGSCRIBE_SPEAKER_MODEL; `longscribe serve` loads it from model_repository/)."
    )


class SpeakerReferenceInvalid(InvalidRequest):
    """A known speaker's reference clip cannot be used: not a data URL of audio, too big, too short or too long."""

    code = "invalid_speaker_reference"
    param = "known_speaker_references"
    hint = (
        "Give each known speaker one clip of 2-10 s of their voice alone, as a data URL "
        "(data:audio/wav;base64,... or any format FFmpeg reads), in the order of known_speaker_names."
    )


class MediaError(LongscribeError):
    status = 422
    code = "media_error"
    hint = "Check that media_url points to an audio or video file."


class MediaForbidden(MediaError):
    code = "media_url_forbidden"
    hint = (
        "Use a public http(s) URL. To fetch from a private network, list it in LONGSCRIBE_ALLOWED_MEDIA_HOSTS "
        "on the service."
    )


class MediaUnreachable(MediaError):
    code = "media_unreachable"
    hint = "Check the host name and that the server is reachable from the service."


class MediaHostNotFound(MediaUnreachable):
    code = "media_host_not_found"
    hint = "Check the spelling of the host in media_url; it does not resolve in DNS."


class MediaConnectionLost(MediaUnreachable):
    code = "media_connection_lost"
    hint = "The media server kept dropping the connection; retry later or serve the file from a steadier host."


class MediaHttpError(MediaError):
    code = "media_http_error"
    hint = "Check the URL in a browser or with curl; it must answer 200/206 with the media."


class RangeNotSupported(MediaError):
    code = "range_not_supported"
    hint = (
        "Serve the file from a server that honours HTTP Range requests (any static file server or object store does)."
    )


class MediaEmpty(MediaError):
    code = "media_empty"
    hint = "The file at media_url has no bytes; check the upload finished."


class UploadMissing(MediaError):
    code = "upload_missing"
    hint = (
        "The orchestrators must share LONGSCRIBE_UPLOAD_DIR (one volume all of them mount) to run uploaded jobs; "
        "upload again, or send the media's URL."
    )


class MediaNotMedia(MediaError):
    code = "media_not_audio"
    hint = "media_url points to a web page: link to the audio or video file itself."


class MediaUnreadable(MediaError):
    code = "media_unreadable"
    hint = "The URL must point to audio or video with an audio stream FFmpeg can decode."


class MediaNoAudio(MediaUnreadable):
    code = "media_no_audio"
    hint = "The file has no audio track; give the original with sound."


class MediaTooLong(MediaError):
    code = "media_too_long"
    hint = "Split the media or raise LONGSCRIBE_MAX_MEDIA_DURATION_SEC."


class Unauthorized(LongscribeError):
    status = 401
    code = "unauthorized"
    hint = "Send `Authorization: Api-Key <key>` or `Authorization: Bearer <key>` with a key the service knows."


class JobNotFound(LongscribeError):
    status = 404
    code = "job_not_found"
    hint = "Check the id; finished jobs are kept for LONGSCRIBE_JOB_TTL_SEC (1 hour by default)."


class ModelNotFound(LongscribeError):
    """A request named a model this service was not started with; OpenAI answers this with 404 too."""

    status = 404
    code = "model_not_found"
    param = "model"

    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(
            f"the model {name!r} does not exist on this service; it serves: {', '.join(available)}",
            hint=f"Use one of {', '.join(available)} (GET /v1/models lists them), or leave `model` out for "
            f"{available[0]}; to serve another, add it to LONGSCRIBE_MODELS or `longscribe serve --model`.",
        )
        self.available = available


class UploadTooLarge(LongscribeError):
    status = 413
    code = "upload_too_large"
    param = "file"
    hint = "Upload a smaller file, or put it at a URL and send `url` instead (no size limit there)."


class BodyTooLarge(LongscribeError):
    status = 413
    code = "body_too_large"
    hint = (
        "Keep a JSON body under 1 MiB, and a form under LONGSCRIBE_MAX_FORM_PARTS parts with each field other "
        "than `file` under LONGSCRIBE_MAX_FORM_FIELD_BYTES."
    )


class Overloaded(LongscribeError):
    status = 429
    code = "overloaded"
    hint = "The service is at its request limit; retry after the number of seconds in Retry-After."

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ShuttingDown(LongscribeError):
    status = 503
    code = "shutting_down"
    hint = "The service is stopping; retry on another replica or in a moment."


class JobsUnavailable(LongscribeError):
    status = 503
    code = "jobs_unavailable"
    hint = "Set LONGSCRIBE_REDIS_URL, or start the service with `longscribe serve` (it runs a local Redis)."


class JobStoreUnreachable(LongscribeError):
    status = 503
    code = "job_store_unreachable"
    hint = "Redis (LONGSCRIBE_REDIS_URL) does not answer: retry in a few seconds; nothing accepted is lost."


class RequestTimeout(LongscribeError):
    status = 504
    code = "request_timeout"
    hint = "Split the media, use the jobs API for long files, or raise LONGSCRIBE_REQUEST_TIMEOUT_SEC."


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


class JobConflict(LongscribeError):
    """The job exists, but is not in a state where this can be done (e.g. a webhook resent before the end)."""

    status = 409
    code = "job_conflict"
    hint = "Read the job (GET /v1/jobs/{id}): the message says which state this needs."

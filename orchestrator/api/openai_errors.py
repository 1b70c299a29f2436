"""Errors on the OpenAI routes (/v1/audio/*, /v1/models) in OpenAI's shape, so its clients raise the right class.

    {"error": {"message", "type", "param", "code", "hint"}}

OpenAI answers any bad input with 400 (our 422s: an invalid request, media
that cannot be transcribed, a translation the model cannot do), and keeps
401, 404, 413 and 429; 5xx stay 5xx. `type` is OpenAI's word for the class
of failure, `param` the form field at fault where it is known, `code` our
own code (the native routes' vocabulary), and `hint` what to do, as on every
other route. Native routes keep their shape: `edge` asks `is_openai_path`.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import LongscribeError

OPENAI_PREFIXES = ("/v1/audio/", "/v1/models")
TYPES = {  # OpenAI's `type` by status; anything else under 500 is an invalid request
    401: "authentication_error",
    403: "permission_error",
    429: "requests",  # what OpenAI sends with rate_limit_exceeded
}


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PREFIXES)


def status_of(native: int) -> int:
    """OpenAI's status for one of ours: 422 (bad input, unreadable media) is 400 there."""
    return 400 if native == 422 else native


def error_type(status: int) -> str:
    return "server_error" if status >= 500 else TYPES.get(status, "invalid_request_error")


def body(status: int, detail: dict[str, str], param: str | None) -> dict[str, Any]:
    """The answer's JSON for `detail` (code, message, hint) at OpenAI's `status`."""
    return {
        "error": {
            "message": detail["message"],
            "type": error_type(status),
            "param": param,
            "code": detail["code"],
            "hint": detail["hint"],
        }
    }


def status_for_code(code: str) -> int:
    """The status of the error class named by `code` (a job's error is stored as its detail); 500 if none is."""
    classes: list[type[LongscribeError]] = [LongscribeError]
    while classes:
        cls = classes.pop()
        if cls.code == code:
            return cls.status
        classes += cls.__subclasses__()
    return LongscribeError.status


def answer(exc: LongscribeError) -> tuple[int, dict[str, Any]]:
    """The status and JSON body OpenAI's clients expect for `exc`."""
    status = status_of(exc.status)
    return status, body(status, exc.detail(), exc.param)

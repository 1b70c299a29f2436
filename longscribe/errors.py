"""Everything the client raises, each a one-line message a person can act on.

    LongscribeError                  base of every error below
    ├── ServiceUnreachable           no answer from the service: refused, timed out, dropped, bad base URL
    ├── APIError                     the service answered 4xx/5xx: .status, .code, .message, .hint
    │   ├── AuthenticationError          401/403: no key, or not one the service knows
    │   ├── NotFound                     404: no such job (or it expired), no such model or route
    │   └── Overloaded                   429: the queue or the key's share is full (.retry_after_s)
    └── JobFailed                    the job ended failed or cancelled: .job_id, .status, .code, .message, .hint

httpx's own errors never leave `longscribe`: they become ServiceUnreachable
at the one place requests are sent (`_http.py`). A local path that does not
exist is Python's FileNotFoundError, raised before anything is sent.
"""

from __future__ import annotations


class LongscribeError(Exception):
    """Base of the client's errors; `str(error)` is one line."""


class ServiceUnreachable(LongscribeError):
    """The service did not answer: connection refused, timeout, a dropped stream, or a base URL that is not one."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(f"cannot reach the service at {base_url}: {reason}")
        self.base_url = base_url
        self.reason = reason


class APIError(LongscribeError):
    """The service refused a request; its JSON error names what is wrong (`code`, `message`) and what to do (`hint`)."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        line = f"{message} [{code}, HTTP {status}]"
        super().__init__(f"{line}. {hint}" if hint else line)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint


class AuthenticationError(APIError):
    """401/403: send a key the service knows (`api_key=` or $LONGSCRIBE_API_KEY)."""


class NotFound(APIError):
    """404: no such job (or it expired), model or route."""


class Overloaded(APIError):
    """429: the service is full for now; ask again after `retry_after_s` seconds."""

    def __init__(self, status: int, code: str, message: str, hint: str | None, retry_after_s: float) -> None:
        super().__init__(status, code, message, hint)
        self.retry_after_s = retry_after_s


class JobFailed(LongscribeError):
    """The job ended without a transcript: `status` is failed or cancelled; code, message and hint say why."""

    def __init__(self, job_id: str, status: str, code: str, message: str, hint: str | None = None) -> None:
        line = f"the job {job_id} {status}: {message} [{code}]"
        super().__init__(f"{line}. {hint}" if hint else line)
        self.job_id = job_id
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint

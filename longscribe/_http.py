"""The one place the client talks HTTP: requests sent, answers checked, failures named.

httpx's exceptions stop here: a transport failure is ServiceUnreachable, a
4xx/5xx answer an APIError (or a subclass) carrying the service's JSON error.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from longscribe.errors import APIError, AuthenticationError, NotFound, Overloaded, ServiceUnreachable

DEFAULT_RETRY_AFTER_S = 1.0


def reason(exc: Exception) -> str:
    """A short cause for a transport error: httpx's text, else its type (ConnectTimeout says nothing)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@contextlib.contextmanager
def transport_errors(base_url: str) -> Iterator[None]:
    """httpx's request failures (transport, decoding, redirects; a URL it cannot send to) as ServiceUnreachable."""
    try:
        yield
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        raise ServiceUnreachable(base_url, reason(exc)) from exc
    except httpx.StreamError as exc:  # a response read after it was closed, etc.: the stream broke
        raise ServiceUnreachable(base_url, reason(exc)) from exc


def api_error(status: int, body: bytes, headers: httpx.Headers | None = None) -> APIError:
    """The service's `{"error": {"code", "message", "hint"}}` (or OpenAI's shape) as the matching APIError."""
    code, message, hint = "http_error", "", None
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or error.get("type") or code)
        message = str(error.get("message") or "")
        hint = error.get("hint")
    if not message:  # not the service's JSON: a proxy's page, say
        message = body.decode(errors="replace").strip().splitlines()[0][:200] if body.strip() else f"HTTP {status}"
    if status in (401, 403):
        return AuthenticationError(status, code, message, hint)
    if status == 404:
        return NotFound(status, code, message, hint)
    if status == 429:
        return Overloaded(status, code, message, hint, retry_after(headers))
    return APIError(status, code, message, hint)


def retry_after(headers: httpx.Headers | None) -> float:
    try:
        return max(0.0, float(headers.get("Retry-After", DEFAULT_RETRY_AFTER_S))) if headers else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


async def request(http: httpx.AsyncClient, base_url: str, method: str, path: str, **kwargs: Any) -> Any:
    """Send, read the whole answer, and return its JSON; any failure as a named error."""
    with transport_errors(base_url):
        response = await http.request(method, f"{base_url}{path}", **kwargs)
    if response.status_code >= 400:
        raise api_error(response.status_code, response.content, response.headers)
    try:
        return response.json()
    except ValueError as exc:
        raise APIError(response.status_code, "not_json", f"the answer to {method} {path} is not JSON") from exc


@contextlib.asynccontextmanager
async def stream(
    http: httpx.AsyncClient, base_url: str, method: str, path: str, **kwargs: Any
) -> AsyncIterator[httpx.Response]:
    """A response whose body is read as it arrives (checked for status first); failures named."""
    with transport_errors(base_url):
        async with http.stream(method, f"{base_url}{path}", **kwargs) as response:
            if response.status_code >= 400:
                raise api_error(response.status_code, await response.aread(), response.headers)
            yield response

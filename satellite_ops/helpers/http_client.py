"""Shared HTTP plumbing for webhook-like satellites: one attempt per call, and safe error text.

The runtime owns retries (docs/runtime.md, "One retry policy"): a satellite's request makes one
attempt per runtime attempt. A 408/425/429/5xx answer or a lost connection raises
:class:`RetryableError` carrying the server's ``Retry-After`` (the runtime waits at least that
long); any other unexpected status raises :class:`FatalError`. Log sinks too: the log
forwarder retries their batches. Error messages never carry request headers, and known secret
values are scrubbed from response excerpts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from satellite_ops.errors import FatalError, RetryableError, parse_retry_after

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
EXCERPT_CHARS = 300
T = TypeVar("T")


def is_retryable_status(status: int) -> bool:
    """429, 408 and server errors are worth another try; other 4xx are not."""
    return status in RETRYABLE_STATUS or status >= 500


def is_2xx(status: int) -> bool:
    """The usual meaning of success."""
    return 200 <= status < 300


def safe_url(url: str | httpx.URL) -> str:
    """The URL without credentials, query or fragment, which may hold tokens."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def excerpt(text: str, secrets: Iterable[str] = (), limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line piece of a response body with secret values masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def stable_key(*parts: str) -> str:
    """A sha256 hex digest of the parts: stable across runs and processes."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def parse_body(response: httpx.Response) -> Any:
    """JSON when the response is JSON, else text (empty body -> None)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def build_request(
    client: httpx.Client | httpx.AsyncClient, what: str, method: str, url: str, **kwargs: Any
) -> httpx.Request:
    """``client.build_request``; a URL that cannot be parsed is fatal (no retry fixes it)."""
    try:
        return client.build_request(method, url, **kwargs)
    except httpx.InvalidURL:
        raise FatalError(f"{what}: invalid url {safe_url(url)}") from None


def status_error(what: str, response: httpx.Response, secrets: Iterable[str]) -> Exception:
    """The error for an unexpected status: retryable (with Retry-After) for 408/429/5xx, else
    fatal."""
    text = (
        f"{what} {response.request.method} {safe_url(response.request.url)} answered "
        f"{response.status_code}: {excerpt(response.text, secrets)}"
    )
    if is_retryable_status(response.status_code):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RetryableError(text, retry_after=retry_after)
    return FatalError(text)


def transport_error(what: str, request: httpx.Request, exc: httpx.HTTPError) -> Exception:
    """A request that got no answer: retryable, except a URL no retry can reach."""
    text = (
        f"{what} {request.method} {safe_url(request.url)} failed: "
        f"{type(exc).__name__}: {excerpt(str(exc), ())}"
    )
    return FatalError(text) if isinstance(exc, httpx.UnsupportedProtocol) else RetryableError(text)


async def send_async(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    what: str,
    secrets: Iterable[str] = (),
    ok: Callable[[int], bool] = is_2xx,
) -> httpx.Response:
    """Send once; return the response when ``ok(status)``, else raise Retryable/FatalError."""
    try:
        response = await client.send(request)
    except httpx.HTTPError as exc:
        raise transport_error(what, request, exc) from None
    if not ok(response.status_code):
        raise status_error(what, response, secrets)
    return response


def send_sync(
    client: httpx.Client,
    request: httpx.Request,
    *,
    what: str,
    secrets: Iterable[str] = (),
    ok: Callable[[int], bool] = is_2xx,
) -> httpx.Response:
    """Blocking twin of :func:`send_async`, for log sinks called from plain threads."""
    try:
        response = client.send(request)
    except httpx.HTTPError as exc:
        raise transport_error(what, request, exc) from None
    if not ok(response.status_code):
        raise status_error(what, response, secrets)
    return response


def header_values(headers: Mapping[str, str]) -> list[str]:
    """Header values and their parts (``Bearer <token>`` -> the token), for scrubbing."""
    out: list[str] = []
    for value in headers.values():
        if value:
            out.append(value)
            out.extend(part for part in value.split() if len(part) >= 8)
    return out

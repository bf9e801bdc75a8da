"""Shared HTTP plumbing for webhook-like satellites: bounded retries and safe error text.

Retries honour ``Retry-After`` (seconds or an HTTP date) up to a cap. Error messages never
carry request headers, and known secret values are scrubbed from response excerpts.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from satellite_ops.errors import FatalError, RetryableError

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
EXCERPT_CHARS = 300


def is_retryable_status(status: int) -> bool:
    """429, 408 and server errors are worth another try; other 4xx are not."""
    return status in RETRYABLE_STATUS or status >= 500


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_delay(attempt: int, retry_after: float | None, cap: float) -> float:
    """The server's wish when given, else exponential backoff with jitter; never above cap."""
    if retry_after is not None:
        return min(retry_after, cap)
    return min(cap, 0.5 * 2 ** (attempt - 1) * (0.5 + random.random()))  # noqa: S311


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


def status_error(
    what: str, response: httpx.Response, secrets: Iterable[str], *, attempts: int
) -> Exception:
    """The error for a final non-success response: retryable for 429/5xx, fatal otherwise."""
    text = (
        f"{what} {response.request.method} {safe_url(response.request.url)} answered "
        f"{response.status_code}: {excerpt(response.text, secrets)}"
    )
    if is_retryable_status(response.status_code):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RetryableError(f"{text} (after {attempts} attempt(s))", retry_after=retry_after)
    return FatalError(text)


def _transport_error(what: str, method: str, url: str, exc: httpx.HTTPError, attempts: int):
    return RetryableError(
        f"{what} {method} {safe_url(url)} failed after {attempts} attempt(s): "
        f"{type(exc).__name__}: {excerpt(str(exc), ())}"
    )


def _should_retry(response: httpx.Response, attempt: int, max_attempts: int) -> bool:
    return attempt < max_attempts and is_retryable_status(response.status_code)


def _wait_for(response: httpx.Response | None, attempt: int, cap: float) -> float:
    header = response.headers.get("retry-after") if response is not None else None
    return retry_delay(attempt, parse_retry_after(header), cap)


def _next_delay(
    what: str,
    request: httpx.Request,
    outcome: httpx.Response | httpx.HTTPError,
    attempt: int,
    max_attempts: int,
    max_wait: float,
) -> float | None:
    """After one attempt: None when ``outcome`` is the response to return, else the wait
    before the next attempt; a transport error on the last attempt is raised."""
    if isinstance(outcome, httpx.HTTPError):
        if attempt >= max_attempts:
            raise _transport_error(what, request.method, str(request.url), outcome, attempt)
        response = None
    elif not _should_retry(outcome, attempt, max_attempts):
        return None
    else:
        response = outcome
    delay = _wait_for(response, attempt, max_wait)
    logger.info("%s: attempt %d failed, retrying in %.2fs", what, attempt, delay)
    return delay


async def send_async(
    client: httpx.AsyncClient,
    build: Callable[[], httpx.Request],
    *,
    what: str,
    max_attempts: int,
    max_wait: float,
) -> httpx.Response:
    """Send with retries on 429/5xx and transport errors; return the last response."""
    for attempt in range(1, max_attempts + 1):
        request = build()
        try:
            outcome: httpx.Response | httpx.HTTPError = await client.send(request)
        except httpx.HTTPError as exc:
            outcome = exc
        delay = _next_delay(what, request, outcome, attempt, max_attempts, max_wait)
        if delay is None:
            return outcome  # type: ignore[return-value]
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def send_sync(
    client: httpx.Client,
    build: Callable[[], httpx.Request],
    *,
    what: str,
    max_attempts: int,
    max_wait: float,
) -> httpx.Response:
    """Blocking twin of :func:`send_async`, for log sinks called from plain threads."""
    for attempt in range(1, max_attempts + 1):
        request = build()
        try:
            outcome: httpx.Response | httpx.HTTPError = client.send(request)
        except httpx.HTTPError as exc:
            outcome = exc
        delay = _next_delay(what, request, outcome, attempt, max_attempts, max_wait)
        if delay is None:
            return outcome  # type: ignore[return-value]
        time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def header_values(headers: Mapping[str, str]) -> list[str]:
    """Header values and their parts (``Bearer <token>`` -> the token), for scrubbing."""
    out: list[str] = []
    for value in headers.values():
        if value:
            out.append(value)
            out.extend(part for part in value.split() if len(part) >= 8)
    return out

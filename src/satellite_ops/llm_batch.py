"""The OpenAI Batch API client of the LLM satellites: a chunk's prompts as one batch job.

One JSONL line per item (``custom_id`` = the item id, ``url`` = ``/v1/chat/completions``, and as
``body`` the very request the synchronous path sends), uploaded to ``/v1/files``
(``purpose=batch``); a batch created on that file with ``completion_window: 24h`` (the only
window OpenAI offers); polled with a pause that starts at ``poll-seconds`` and grows by half
each time up to ``poll-max-seconds``, never shorter than a ``Retry-After`` the server asks
for; then its output and error files read back per ``custom_id``. Any server with the same API
works: OpenAI, llama-stack's reference batches provider (the tests use it), and others.

The API key goes only into the ``Authorization`` header: never into logs, state, batch
metadata or error messages (errors name the URL without credentials and the server's text).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from satellite_ops.errors import FatalError, RetryableError, parse_retry_after
from satellite_ops.http_client import safe_url
from satellite_ops.llm_engines import MAX_BODY_IN_ERROR, Generation, parse_chat_completion

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
WINDOW = timedelta(hours=24)
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
TAG = "exosphere_tag"  # batch metadata: the state record that created the batch
POLL_GROWTH = 1.5
# error codes of a batch that failed as a whole which another batch may not hit again
_RETRYABLE_CODES = frozenset(
    {"internal_error", "output_failed", "server_error", "rate_limit_exceeded",
     "token_limit_exceeded", "batch_expired", "batch_cancelled"}
)  # fmt: skip

Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class BatchPolicy:
    """How long a chunk may wait for its batch, and how often it asks the server."""

    poll_seconds: float = 10.0
    poll_max_seconds: float = 300.0
    reserve_seconds: float = 3600.0  # kept before the deadline to answer the rest synchronously
    min_wait_seconds: float = 1800.0  # a batch that could wait less is not started

    def wait_until(self, deadline: datetime | None, now: datetime) -> datetime:
        """When waiting stops: the deadline less the reserve, at most the batch window."""
        limit = now + WINDOW + timedelta(seconds=self.reserve_seconds)
        if deadline is None:
            return limit
        return min(limit, deadline - timedelta(seconds=self.reserve_seconds))

    def leaves_time(self, deadline: datetime | None, now: datetime) -> bool:
        """Whether the deadline leaves a batch at least ``min_wait_seconds`` before the reserve."""
        if deadline is None:
            return True
        left = (deadline - now).total_seconds() - self.reserve_seconds
        return left >= self.min_wait_seconds


class BatchApi:
    """``/v1/files`` and ``/v1/batches`` of one server. Errors follow the synchronous path:
    429, 5xx, timeouts and lost connections are retryable (with the server's Retry-After),
    other 4xx are fatal."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        self.where = safe_url(base_url.rstrip("/"))
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        )

    async def __aenter__(self) -> BatchApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def upload(self, data: bytes, filename: str) -> str:
        """Upload a JSONL input file; its file id."""
        files = {"file": (filename, data, "application/jsonl")}
        answer = await self._json("POST", "files", files=files, data={"purpose": "batch"})
        return str(answer["id"])

    async def create(self, input_file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        body = {
            "input_file_id": input_file_id,
            "endpoint": ENDPOINT,
            "completion_window": COMPLETION_WINDOW,
            "metadata": metadata,
        }
        return await self._json("POST", "batches", json=body)

    async def get(self, batch_id: str) -> dict[str, Any]:
        return await self._json("GET", f"batches/{batch_id}")

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return await self._json("POST", f"batches/{batch_id}/cancel")

    async def content(self, file_id: str) -> bytes:
        return (await self._send("GET", f"files/{file_id}/content")).content

    async def find(self, tag: str, since: float) -> dict[str, Any] | None:
        """The batch whose metadata carries ``tag``, looking back (newest first) to batches
        created at ``since`` (epoch seconds); None when there is none."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
            page = await self._json("GET", "batches", params=params)
            for batch in page.get("data") or []:
                if (batch.get("metadata") or {}).get(TAG) == tag:
                    return batch
                if float(batch.get("created_at") or since) < since:
                    return None
            if not page.get("has_more") or not page.get("last_id"):
                return None
            after = str(page["last_id"])

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise RetryableError(
                f"Batch API {method} {self.where}/{path} sent no JSON: "
                f"{response.text[:MAX_BODY_IN_ERROR]!r}"
            ) from None

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        where = f"Batch API {method} {self.where}/{path}"
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"{where} timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"{where} failed: {type(exc).__name__}: {exc}") from None
        text = response.text[:MAX_BODY_IN_ERROR] if response.status_code >= 400 else ""
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableError(
                f"{where} answered {response.status_code}: {text}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if response.status_code >= 400:
            raise FatalError(f"{where} refused the request ({response.status_code}): {text}")
        return response


def input_file(rows: list[tuple[str, dict[str, Any]]]) -> bytes:
    """The JSONL input file: one ``/v1/chat/completions`` request per (custom_id, body)."""
    lines = (
        json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body})
        for cid, body in rows
    )
    return ("\n".join(lines) + "\n").encode()


async def wait_for(
    api: BatchApi,
    batch_id: str,
    until: datetime,
    policy: BatchPolicy,
    *,
    log: logging.Logger | logging.LoggerAdapter,
    sleep: Sleep = asyncio.sleep,
) -> dict[str, Any] | None:
    """The batch once it has ended, or its last known state (None if never read) at ``until``.
    A poll that fails transiently is logged and the wait goes on."""
    pause = policy.poll_seconds
    last: dict[str, Any] | None = None
    while True:
        asked = 0.0
        try:
            last = await api.get(batch_id)
            if last.get("status") in TERMINAL:
                return last
        except RetryableError as exc:
            asked = exc.retry_after or 0.0
            log.warning(f"batch {batch_id}: polling failed, will ask again: {exc}")
        left = (until - datetime.now(UTC)).total_seconds()
        if left <= 0:
            return last
        await sleep(min(max(pause, asked), left))
        pause = min(pause * POLL_GROWTH, policy.poll_max_seconds)


async def results(api: BatchApi, batch: dict[str, Any]) -> dict[str, Generation | Exception]:
    """Each answered ``custom_id``'s answer or error, from the output and error files (a
    cancelled or expired batch may have both, holding what it finished)."""
    out: dict[str, Generation | Exception] = {}
    for key in ("output_file_id", "error_file_id"):
        if file_id := batch.get(key):
            out.update(read_results(await api.content(str(file_id))))
    return out


def read_results(data: bytes) -> dict[str, Generation | Exception]:
    """The lines of an output or error file, by ``custom_id``. A line that cannot be read
    answers nothing: its item counts as unanswered."""
    out: dict[str, Generation | Exception] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            row = json.loads(line)
            custom_id = str(row["custom_id"])
        except (ValueError, KeyError, TypeError):
            continue
        out[custom_id] = _outcome(row)
    return out


def _outcome(row: dict[str, Any]) -> Generation | Exception:
    response = row.get("response") or {}
    body = response.get("body") if isinstance(response, dict) else None
    if isinstance(body, str):  # OpenAI sends an object; llama-stack the object's JSON text
        with contextlib.suppress(ValueError):
            body = json.loads(body)
    if error := row.get("error"):
        return RetryableError(f"the batch failed this request: {_error_text(error)}")
    status = response.get("status_code") if isinstance(response, dict) else None
    if isinstance(status, int) and status >= 400:
        text = _error_text(body.get("error", body) if isinstance(body, dict) else body)
        if status == 429 or status >= 500:
            return RetryableError(f"LLM server answered {status} in the batch: {text}")
        return FatalError(f"LLM server refused the request in the batch ({status}): {text}")
    try:
        return parse_chat_completion(body)
    except ValueError:
        return RetryableError(
            f"the batch returned an unexpected answer: {str(body)[:MAX_BODY_IN_ERROR]}"
        )


def failed_batch_errors(batch: dict[str, Any], custom_ids: list[str]) -> dict[str, Exception]:
    """Each item's error when the batch failed as a whole (the server refused its input).
    Errors name input lines; an item whose own line is fine gets the batch's first error, as
    a retryable one: a batch without the bad lines may pass."""
    entries = (batch.get("errors") or {}).get("data") or []
    own: dict[str, Exception] = {}
    first: str | None = None
    for entry in entries:
        code = str(entry.get("code") or "error")
        text = f"the Batch API refused batch {batch.get('id')} ({code}): {entry.get('message')}"
        first = first or text
        line = entry.get("line")
        if isinstance(line, int) and 1 <= line <= len(custom_ids):
            kind = RetryableError if code in _RETRYABLE_CODES else FatalError
            own.setdefault(custom_ids[line - 1], kind(text))
        elif line is None and code not in _RETRYABLE_CODES:
            return {cid: FatalError(text) for cid in custom_ids}
    other = first or f"batch {batch.get('id')} failed without giving a reason"
    return {cid: own.get(cid) or RetryableError(other) for cid in custom_ids}


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        message = error.get("message") or json.dumps(error)[:MAX_BODY_IN_ERROR]
        return f"{message} ({code})" if code else str(message)
    return str(error)[:MAX_BODY_IN_ERROR]


def until_text(until: datetime) -> str:
    """``in 3h12m`` style text for logs."""
    seconds = max(0, math.floor((until - datetime.now(UTC)).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"

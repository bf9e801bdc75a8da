"""A client of the OpenAI Batch API (``/v1/files``, ``/v1/batches``), as OpenAI, vLLM's and
llama-stack's servers offer it: half the price of a synchronous call, for an answer within a
completion window instead of seconds.

One batch is one JSONL file of ``/v1/chat/completions`` requests whose ``custom_id`` is the
item's id; the server answers with an output file (answered rows) and an error file (failed
rows), each row naming its ``custom_id``. This module only talks HTTP: when to use a batch and
what to do with its rows is ``llm_batch_mode``'s.

What the server says is judged row by row: a malformed row fails only its own item
(``parse_row`` never raises). A poll the server refuses or drops (403, 404, 429, 5xx, a lost
connection, an unreadable answer) says nothing about the batch, which may still be running:
polls are retried with backoff, and a batch whose fate stays unknown is
:class:`BatchUnreachable`, never "gone" (its rows must not be asked anywhere else).

The API key travels in the ``Authorization`` header only: never in a URL, a log line, the
step's state or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from satellite_ops.errors import FatalError, RetryableError, SatelliteError
from satellite_ops.helpers.llm_engines import (
    MAX_BODY_IN_ERROR,
    Generation,
    parse_chat_completion,
    raise_for_status,
)

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"  # the only window OpenAI (and llama-stack) accept
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
POLL_GROWTH = 1.5
POLL_FAILURES = 8  # consecutive failed polls (waits growing x1.5) before a batch is unreachable
CANCEL_WAIT_SECONDS = 600.0  # OpenAI: a batch stays `cancelling` for up to 10 minutes
# Batch-level errors that no resubmission fixes (the file or a request in it is wrong).
INVALID_CODES = frozenset(
    {
        "invalid_request", "missing_required_parameter", "invalid_url", "invalid_json_line",
        "streaming_unsupported", "model_not_found", "invalid_value", "too_many_requests_in_file",
    }
)  # fmt: skip

logger = logging.getLogger(__name__)
Outcome = Generation | BaseException


class RowNotRun(RetryableError):
    """A row that carries only an ``error``, no HTTP status. In a batch that expired or was
    cancelled it says the request was not run (OpenAI's ``batch_expired``), so its item goes
    into the next batch instead of failing; in a completed batch it is the item's failed
    attempt (retryable: the runtime asks it again, in a smaller batch)."""


class BatchUnreachable(RetryableError):
    """The server did not say what became of a batch (its polls, or its cancel, kept failing).
    The batch may still be running and answering, so its rows are asked nowhere else: its
    items get this retryable error and their retry follows the same batch again."""

    def __init__(self, batch_id: str, reason: str) -> None:
        super().__init__(f"batch {batch_id}: no status from the server ({reason}); kept")
        self.batch_id = batch_id


@dataclass(frozen=True)
class BatchStatus:
    """What the server says about a batch."""

    id: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: tuple[dict[str, Any], ...] = ()
    request_counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchStatus:
        errors = (data.get("errors") or {}).get("data") or ()
        return cls(
            id=str(data["id"]),
            status=str(data.get("status") or ""),
            output_file_id=data.get("output_file_id"),
            error_file_id=data.get("error_file_id"),
            errors=tuple(e for e in errors if isinstance(e, dict)),
            request_counts=dict(data.get("request_counts") or {}),
        )

    def failure(self) -> BaseException:
        """The error every row of a failed batch gets: fatal when the server refused the file
        itself (a bad request in it), retryable otherwise."""
        codes = {str(e.get("code")) for e in self.errors}
        first = "; ".join(
            f"{e.get('code')}: {e.get('message')}"
            + (f" (line {e['line']})" if e.get("line") else "")
            for e in self.errors[:3]
        )
        text = f"batch {self.id} {self.status}" + (f": {first}" if first else "")
        if self.status == "failed" and codes & INVALID_CODES:
            return FatalError(text[:MAX_BODY_IN_ERROR])
        return RetryableError(text[:MAX_BODY_IN_ERROR])


def request_line(custom_id: str, body: Mapping[str, Any]) -> str:
    """One JSONL line of a batch's input file."""
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False)


def parse_row(row: Mapping[str, Any]) -> tuple[str, Outcome]:
    """One row of an output or error file: its ``custom_id`` and the answer or the error;
    never raises (a row that is not what the API documents fails its item, retryably).

    A row with an HTTP status is judged like a synchronous answer with that status (200: the
    answer; 429 or 5xx: retryable; another 4xx: fatal). A row that carries only an ``error``
    (llama-stack's reference provider writes every failure so, OpenAI an expired row) is
    retryable: it is asked again in the next, smaller batch, then routed like any failure.
    """
    custom_id = str(row.get("custom_id"))
    try:
        return custom_id, _outcome(row)
    except Exception:  # noqa: BLE001 - whatever the row holds, only its item fails
        text = json.dumps(row, default=str)[:MAX_BODY_IN_ERROR]
        return custom_id, RetryableError(f"malformed batch row: {text}")


def _outcome(row: Mapping[str, Any]) -> Outcome:
    response = row.get("response")
    error = row.get("error")
    if isinstance(response, dict) and response.get("status_code") is not None:
        status = int(response["status_code"])
        body = response.get("body")
        if isinstance(body, str):
            with contextlib.suppress(ValueError):  # llama-stack sends the body as JSON text
                body = json.loads(body)
        if status == 200:
            try:
                return parse_chat_completion(body)
            except ValueError:
                text = json.dumps(body)[:MAX_BODY_IN_ERROR]
                return RetryableError(f"batch row is not a chat completion: {text}")
        message = _error_message(body) or json.dumps(body)[:MAX_BODY_IN_ERROR]
        kind = RetryableError if status == 429 or status >= 500 else FatalError
        return kind(f"batch row refused ({status}): {message}")
    message = _error_message({"error": error}) or "no answer"
    return RowNotRun(f"batch row failed: {message}")


def _error_message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind = error.get("code") or error.get("type")
        message = str(error.get("message") or "")[:MAX_BODY_IN_ERROR]
        return f"{kind}: {message}" if kind else message
    return str(error)[:MAX_BODY_IN_ERROR] if error else ""


class BatchClient:
    """The Batch API of one OpenAI-compatible server (``base_url`` ends in ``/v1``).

    Every read of a batch's fate (its status, its files, its cancel) is *patient*: a failure is
    tried again after a wait that starts at ``poll_seconds`` and grows by half up to
    ``poll_max_seconds`` (longer when a 429/503 asks so with ``Retry-After``), and only
    ``POLL_FAILURES`` failures in a row make the batch :class:`BatchUnreachable`.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float = 60.0,
        *,
        poll_seconds: float = 5.0,
        poll_max_seconds: float = 300.0,
        log: logging.Logger | logging.LoggerAdapter = logger,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self._timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self._client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout)
        self.poll_seconds = poll_seconds
        self.poll_max_seconds = max(poll_max_seconds, poll_seconds)
        self.log = log
        self.sleep = sleep

    async def __aenter__(self) -> BatchClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        url = self.base_url + path
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"{what} at {url} timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"{what} at {url} failed: {type(exc).__name__}: {exc}") from None
        raise_for_status(response, f"{what} at {url}")
        return response

    async def _patient(self, batch_id: str, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()``, tried again after each failure with growing waits."""
        wait = self.poll_seconds
        for failures in range(1, POLL_FAILURES + 1):
            try:
                return await call()
            except SatelliteError as exc:
                if failures == POLL_FAILURES:
                    reason = f"{what} failed {failures} times in a row, last: {exc}"
                    raise BatchUnreachable(batch_id, reason) from None
                self.log.warning(f"batch {batch_id}: {what} failed, trying again: {exc}")
                asked = getattr(exc, "retry_after", None) or 0.0
                await self.sleep(max(wait, min(asked, self.poll_max_seconds)))
                wait = min(wait * POLL_GROWTH, self.poll_max_seconds)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def submit(self, lines: list[str], metadata: Mapping[str, str]) -> BatchStatus:
        """Upload the JSONL file (``purpose=batch``) and create a batch over it."""
        content = ("\n".join(lines) + "\n").encode()
        uploaded = await self._call(
            "POST",
            "/files",
            "batch input upload",
            files={"file": ("exosphere-batch.jsonl", content, "application/jsonl")},
            data={"purpose": "batch"},
        )
        body = {
            "input_file_id": _field(uploaded, "id"),
            "endpoint": ENDPOINT,
            "completion_window": COMPLETION_WINDOW,
            "metadata": dict(metadata),
        }
        created = await self._call("POST", "/batches", "batch creation", json=body)
        return _status(created)

    async def retrieve(self, batch_id: str) -> BatchStatus:
        """The batch's status, in one request: any failure (a 404 included) raises, since a
        refused poll says nothing about the batch."""
        return _status(await self._call("GET", f"/batches/{batch_id}", "batch status"))

    async def wait(self, batch_id: str, *, until: datetime | None) -> BatchStatus:
        """Poll until the batch ends or ``until`` (then the last status, still running).

        Waits start at ``poll_seconds`` and grow by half up to ``poll_max_seconds``; a failed
        poll is tried again (see the class). An interrupt of the step (run terminated:
        ``KeyboardInterrupt``, Dagster's ``DagsterExecutionInterruptedError``, cancellation,
        the satellite's ``timeout:``) cancels the batch on the server before it propagates;
        its answered rows stay in its output file for whoever runs the chunk next.
        """
        wait = self.poll_seconds
        try:
            while True:
                status = await self._patient(batch_id, "poll", lambda: self.retrieve(batch_id))
                if status.terminal:
                    return status
                left = (until - datetime.now(UTC)).total_seconds() if until else None
                if left is not None and left <= 0:
                    return status
                await self.sleep(min(wait, left) if left is not None else wait)
                wait = min(wait * POLL_GROWTH, self.poll_max_seconds)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # an interrupt, not a failure of ours
                self.cancel_now(batch_id)
            raise

    async def stop(self, batch_id: str) -> BatchStatus:
        """Cancel the batch and wait until the server says it ended (answered rows are then in
        its output file). :class:`BatchUnreachable` when the server accepts no cancel or the
        batch is still not ended ``CANCEL_WAIT_SECONDS`` later: it may still answer."""

        async def cancel_once() -> BatchStatus:
            try:
                path = f"/batches/{batch_id}/cancel"
                return _status(await self._call("POST", path, "batch cancel"))
            except FatalError:  # 400/409: it may have ended meanwhile
                status = await self.retrieve(batch_id)
                if status.terminal:
                    return status
                raise

        status = await self._patient(batch_id, "cancel", cancel_once)
        if not status.terminal:
            later = datetime.now(UTC) + timedelta(seconds=CANCEL_WAIT_SECONDS)
            status = await self.wait(batch_id, until=later)
        if not status.terminal:
            reason = f"still {status.status} {CANCEL_WAIT_SECONDS:.0f}s after its cancel"
            raise BatchUnreachable(batch_id, reason)
        return status

    def cancel_now(self, batch_id: str) -> None:
        """Cancel from an interrupt handler: a plain blocking call, never raising (the event
        loop may be stopping), so the interrupt itself goes on."""
        url = f"{self.base_url}/batches/{batch_id}/cancel"
        try:
            response = httpx.post(url, headers=self._headers, timeout=10.0)
            logger.warning(
                "cancelled batch %s (call interrupted): %s", batch_id, response.status_code
            )
        except Exception as exc:  # noqa: BLE001 - best effort while stopping
            logger.warning("could not cancel batch %s: %s", batch_id, type(exc).__name__)

    async def rows(self, status: BatchStatus) -> dict[str, Outcome]:
        """custom_id -> answer or error, from the batch's output and error files. A line that
        is not a row naming its ``custom_id`` is skipped (its item has no row)."""
        found: dict[str, Outcome] = {}
        for file_id in (status.error_file_id, status.output_file_id):  # an answer wins
            if not file_id:
                continue
            path = f"/files/{file_id}/content"
            response = await self._patient(
                status.id, "output download", lambda p=path: self._call("GET", p, "download")
            )
            for line in response.text.splitlines():
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    row = None
                if not isinstance(row, dict) or row.get("custom_id") is None:
                    self.log.warning(f"batch {status.id}: unreadable output line skipped")
                    continue
                custom_id, outcome = parse_row(row)
                found[custom_id] = outcome
        return found


def _status(response: httpx.Response) -> BatchStatus:
    try:
        return BatchStatus.from_json(response.json())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RetryableError(
            f"unexpected answer from {response.request.url}: {response.text[:MAX_BODY_IN_ERROR]}"
        ) from None


def _field(response: httpx.Response, name: str) -> str:
    try:
        return str(response.json()[name])
    except (ValueError, KeyError, TypeError):
        raise RetryableError(
            f"unexpected answer from {response.request.url}: {response.text[:MAX_BODY_IN_ERROR]}"
        ) from None

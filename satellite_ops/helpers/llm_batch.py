"""A client of the OpenAI Batch API (``/v1/files``, ``/v1/batches``), as OpenAI, vLLM's and
llama-stack's servers offer it: half the price of a synchronous call, for an answer within a
completion window instead of seconds.

One batch is one JSONL file of ``/v1/chat/completions`` requests whose ``custom_id`` is the
item's id; the server answers with an output file (answered rows) and an error file (failed
rows), each row naming its ``custom_id``. This module only talks HTTP: when to use a batch and
what to do with its rows is ``llm_batch_mode``'s.

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
from datetime import UTC, datetime
from typing import Any

import httpx

from satellite_ops.errors import FatalError, RetryableError
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
POLL_FAILURES = 5  # consecutive failed polls before the step gives up (the batch keeps running)
# Batch-level errors that no resubmission fixes (the file or a request in it is wrong).
INVALID_CODES = frozenset(
    {
        "invalid_request", "missing_required_parameter", "invalid_url", "invalid_json_line",
        "streaming_unsupported", "model_not_found", "invalid_value", "too_many_requests_in_file",
    }
)  # fmt: skip

logger = logging.getLogger(__name__)
Outcome = Generation | BaseException


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
    """One row of an output or error file: its ``custom_id`` and the answer or the error.

    A row with an HTTP status is judged like a synchronous answer with that status (200: the
    answer; 429 or 5xx: retryable; another 4xx: fatal). A row that carries only an ``error``
    (llama-stack's reference provider writes every failure so, OpenAI an expired row) is
    retryable: it is asked again in the next, smaller batch, then routed like any failure.
    """
    custom_id = str(row.get("custom_id"))
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
                return custom_id, parse_chat_completion(body)
            except ValueError:
                text = json.dumps(body)[:MAX_BODY_IN_ERROR]
                return custom_id, RetryableError(f"batch row is not a chat completion: {text}")
        message = _error_message(body) or json.dumps(body)[:MAX_BODY_IN_ERROR]
        kind = RetryableError if status == 429 or status >= 500 else FatalError
        return custom_id, kind(f"batch row refused ({status}): {message}")
    message = _error_message({"error": error}) or "no answer"
    return custom_id, RetryableError(f"batch row failed: {message}")


def _error_message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind = error.get("code") or error.get("type")
        message = str(error.get("message") or "")[:MAX_BODY_IN_ERROR]
        return f"{kind}: {message}" if kind else message
    return str(error)[:MAX_BODY_IN_ERROR] if error else ""


class BatchClient:
    """The Batch API of one OpenAI-compatible server (``base_url`` ends in ``/v1``)."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float = 60.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self._timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self._client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout)
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
        return BatchStatus.from_json(created.json())

    async def retrieve(self, batch_id: str) -> BatchStatus | None:
        """The batch's status; None when the server does not know it (any more)."""
        try:
            response = await self._call("GET", f"/batches/{batch_id}", "batch status")
        except FatalError:
            return None  # 404 (or another refusal): the batch is gone, submit the rows again
        return BatchStatus.from_json(response.json())

    async def wait(
        self,
        batch_id: str,
        *,
        until: datetime | None,
        poll_seconds: float,
        poll_max_seconds: float,
    ) -> BatchStatus | None:
        """Poll until the batch ends or ``until`` (then the last status, still running).

        Waits start at ``poll_seconds`` and grow by half up to ``poll_max_seconds`` (a
        ``Retry-After`` on a 429/503 waits longer); a poll that fails is tried again,
        ``POLL_FAILURES`` times in a row at most. An interrupt of the step (run terminated:
        ``KeyboardInterrupt``, Dagster's ``DagsterExecutionInterruptedError``, cancellation)
        cancels the batch on the server before it propagates.
        """
        wait, failures = poll_seconds, 0
        try:
            while True:
                try:
                    status = await self.retrieve(batch_id)
                    failures = 0
                except RetryableError as exc:
                    failures += 1
                    if failures >= POLL_FAILURES:
                        raise
                    asked = exc.retry_after or 0.0
                    await self.sleep(max(wait, min(asked, poll_max_seconds)))
                    continue
                if status is None or status.terminal:
                    return status
                left = (until - datetime.now(UTC)).total_seconds() if until else None
                if left is not None and left <= 0:
                    return status
                await self.sleep(min(wait, left) if left is not None else wait)
                wait = min(wait * POLL_GROWTH, poll_max_seconds)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # an interrupt, not a failure of ours
                self.cancel_now(batch_id)
            raise

    async def cancel(self, batch_id: str) -> BatchStatus | None:
        """Ask the server to stop the batch (answered rows are kept in its output file)."""
        try:
            response = await self._call("POST", f"/batches/{batch_id}/cancel", "batch cancel")
        except FatalError:  # 409: already finished; 404: gone
            return await self.retrieve(batch_id)
        return BatchStatus.from_json(response.json())

    def cancel_now(self, batch_id: str) -> None:
        """Cancel from an interrupt handler: a plain blocking call, never raising (the event
        loop may be stopping), so the interrupt itself goes on."""
        url = f"{self.base_url}/batches/{batch_id}/cancel"
        try:
            response = httpx.post(url, headers=self._headers, timeout=10.0)
            logger.warning(
                "cancelled batch %s (step interrupted): %s", batch_id, response.status_code
            )
        except Exception as exc:  # noqa: BLE001 - best effort while stopping
            logger.warning("could not cancel batch %s: %s", batch_id, type(exc).__name__)

    async def rows(self, status: BatchStatus) -> dict[str, Outcome]:
        """custom_id -> answer or error, from the batch's output and error files."""
        found: dict[str, Outcome] = {}
        for file_id in (status.error_file_id, status.output_file_id):  # an answer wins
            if not file_id:
                continue
            response = await self._call("GET", f"/files/{file_id}/content", "batch output download")
            for line in response.text.splitlines():
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    logger.warning("batch %s: unreadable output line skipped", status.id)
                    continue
                if isinstance(row, dict) and row.get("custom_id") is not None:
                    custom_id, outcome = parse_row(row)
                    found[custom_id] = outcome
        return found


def _field(response: httpx.Response, name: str) -> str:
    try:
        return str(response.json()[name])
    except (ValueError, KeyError, TypeError):
        raise RetryableError(
            f"unexpected answer from {response.request.url}: {response.text[:MAX_BODY_IN_ERROR]}"
        ) from None

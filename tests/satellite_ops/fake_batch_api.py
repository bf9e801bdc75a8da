"""A fake OpenAI Batch API on 127.0.0.1 whose behaviour a test scripts: files (upload,
content), batches (create, get, cancel) and synchronous ``/v1/chat/completions``.

Each batch follows the :class:`Script` of its rank (the first batch created takes
``scripts[0]``...; the default answers every row): how many polls it stays ``in_progress``
(or until an event is set: slow completion), how it ends (``completed``, ``expired``,
``failed``, ``cancelled``), how many rows it answers first and which rows it writes malformed.
``fail_polls`` / ``fail_cancels`` are answered to the next status polls / cancels, in order
(an HTTP status, or ``"drop"``: the connection closes without an answer). Everything the
server answered is on record, so a test can check that no prompt was paid twice
(:meth:`FakeBatchApi.billed`).

Every answer is ``"answer to: <prompt>"`` with 10 prompt and 5 completion tokens.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from http_servers import serve_http

PROMPT_TOKENS, COMPLETION_TOKENS = 10, 5
MALFORMED = {  # kind -> a row of the output file that is not what the API documents
    "status": lambda cid: {"custom_id": cid, "response": {"status_code": "two hundred"}},
    "content": lambda cid: {
        "custom_id": cid,
        "response": {
            "status_code": 200,
            "body": {"choices": [{"message": {"content": {"not": "text"}}}], "usage": {}},
        },
    },  # fmt: skip
    "body": lambda cid: {"custom_id": cid, "response": {"status_code": 200, "body": [1, 2]}},
    "not-json": lambda cid: f'{{"custom_id": "{cid}", "response": {{"status_co',
}


@dataclass
class Script:
    """How the server treats one batch."""

    end: str = "completed"  # completed | expired | failed | cancelled (by the provider)
    answered: int = 0  # rows answered before an early end
    malformed: dict[int, str] = field(default_factory=dict)  # row index -> MALFORMED kind
    polls: int = 1  # polls that still see in_progress
    hold: threading.Event | None = None  # in_progress until set (and `polls` are done)
    errors: tuple[dict[str, Any], ...] = ()  # batch-level errors of a failed batch


@dataclass
class Batch:
    id: str
    script: Script
    rows: list[dict[str, Any]]  # the input file's lines
    metadata: dict[str, str]
    status: str = "in_progress"
    polls: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    answered: list[str] = field(default_factory=list)  # prompts of the rows it answered

    def json(self) -> dict[str, Any]:
        errors = (
            {"object": "list", "data": list(self.script.errors)} if self.script.errors else None
        )
        return {
            "id": self.id, "object": "batch", "status": self.status, "metadata": self.metadata,
            "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
            "errors": errors, "request_counts": {"total": len(self.rows)},
        }  # fmt: skip


class FakeBatchApi:
    """The server's state; ``url`` is its ``/v1``."""

    def __init__(self) -> None:
        self.url = ""
        self.scripts: list[Script] = []
        self.fail_polls: list[int | str] = []
        self.fail_cancels: list[int | str] = []
        self.batches: dict[str, Batch] = {}
        self.files: dict[str, str] = {}
        self.sync_prompts: list[str] = []
        self.polls: list[tuple[str, int | str]] = []  # (batch id, what the poll got)
        self.cancels: list[str] = []
        self.lock = threading.Lock()
        self._ids = itertools.count(1)

    # -- what tests read ------------------------------------------------------------------
    def billed(self) -> list[str]:
        """Every prompt the provider answered (and charged): batch rows, then sync calls."""
        with self.lock:
            rows = [p for b in self.batches.values() for p in b.answered]
            return rows + list(self.sync_prompts)

    def ordered(self) -> list[Batch]:
        with self.lock:
            return list(self.batches.values())

    # -- the API ----------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def create(self, body: dict[str, Any]) -> Batch:
        text = self.files[body["input_file_id"]]
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        with self.lock:
            rank = len(self.batches)
            script = self.scripts[rank] if rank < len(self.scripts) else Script()
            batch = Batch(self.new_id("batch"), script, rows, dict(body.get("metadata") or {}))
            self.batches[batch.id] = batch
        return batch

    def poll(self, batch: Batch) -> None:
        with self.lock:
            if batch.status in ("completed", "expired", "failed", "cancelled"):
                return
            if batch.status == "cancelling":
                self._finish(batch, "cancelled")
                return
            batch.polls += 1
            held = batch.script.hold is not None and not batch.script.hold.is_set()
            if not held and batch.polls > batch.script.polls:
                self._finish(batch, batch.script.end)

    def cancel(self, batch: Batch) -> bool:
        with self.lock:
            self.cancels.append(batch.id)
            if batch.status in ("completed", "expired", "failed", "cancelled"):
                return False
            batch.status = "cancelling"
            return True

    def _finish(self, batch: Batch, status: str) -> None:
        script = batch.script
        if status == "completed":
            count = len(batch.rows)
        else:  # an early end answers `answered` rows first (none when the file was refused)
            count = 0 if script.errors else script.answered or 0
        output, errors = [], []
        for index, row in enumerate(batch.rows):
            cid, prompt = row["custom_id"], row["body"]["messages"][0]["content"]
            if index < count:
                batch.answered.append(prompt)
                kind = script.malformed.get(index)
                line = MALFORMED[kind](cid) if kind else answered_row(cid, prompt)
                output.append(line if isinstance(line, str) else json.dumps(line))
            elif status in ("expired", "cancelled"):
                code = f"batch_{status}"
                error = {"code": code, "message": f"request not run: batch {status}"}
                errors.append(json.dumps({"custom_id": cid, "response": None, "error": error}))
        if output:
            batch.output_file_id = self._file("\n".join(output) + "\n")
        if errors:
            batch.error_file_id = self._file("\n".join(errors) + "\n")
        batch.status = status

    def _file(self, text: str) -> str:
        file_id = self.new_id("file")
        self.files[file_id] = text
        return file_id


def answer(prompt: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer to: {prompt}"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS},
    }  # fmt: skip


def answered_row(custom_id: str, prompt: str) -> dict[str, Any]:
    response = {"status_code": 200, "request_id": "req", "body": answer(prompt)}
    return {"id": "row", "custom_id": custom_id, "response": response, "error": None}


class _Handler(BaseHTTPRequestHandler):
    api: FakeBatchApi

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any = None, text: str | None = None) -> None:
        body = (text if text is not None else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _injected(self, queue: list[int | str], batch_id: str) -> bool:
        """Answer the next scripted failure, if any (True when one was answered)."""
        with self.api.lock:
            failure = queue.pop(0) if queue else None
            if queue is self.api.fail_polls:
                self.api.polls.append((batch_id, failure or 200))
        if failure is None:
            return False
        if failure == "drop":
            self.close_connection = True
            return True
        self._send(int(failure), {"error": {"message": f"scripted {failure}"}})
        return True

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        api, parts = self.api, self.path.strip("/").split("/")
        if parts[:2] == ["v1", "files"] and parts[3:] == ["content"] and parts[2] in api.files:
            self._send(200, text=api.files[parts[2]])
        elif parts[:2] == ["v1", "batches"] and len(parts) == 3 and parts[2] in api.batches:
            if not self._injected(api.fail_polls, parts[2]):
                batch = api.batches[parts[2]]
                api.poll(batch)
                self._send(200, batch.json())
        else:
            self._send(404, {"error": {"message": f"no {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        api, parts, body = self.api, self.path.strip("/").split("/"), self._body()
        if parts == ["v1", "files"]:
            file_id = api.new_id("file")
            api.files[file_id] = _upload(self.headers.get("Content-Type", ""), body)
            self._send(200, {"id": file_id, "object": "file", "purpose": "batch"})
        elif parts == ["v1", "batches"]:
            self._send(200, api.create(json.loads(body)).json())
        elif parts[:2] == ["v1", "batches"] and parts[3:] == ["cancel"] and parts[2] in api.batches:
            if not self._injected(api.fail_cancels, parts[2]):
                batch = api.batches[parts[2]]
                accepted = api.cancel(batch)
                self._send(200 if accepted else 409, batch.json())
        elif parts == ["v1", "chat", "completions"]:
            prompt = json.loads(body)["messages"][0]["content"]
            with api.lock:
                api.sync_prompts.append(prompt)
            self._send(200, answer(prompt))
        else:
            self._send(404, {"error": {"message": f"no {self.path}"}})


def _upload(content_type: str, body: bytes) -> str:
    """The ``file`` part of a multipart upload."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True).decode()
    raise ValueError("no file part in the upload")


@contextmanager
def fake_batch_api() -> Iterator[FakeBatchApi]:
    """A started server (threads, a backlog for bursts: ``http_servers``) and its state."""
    api = FakeBatchApi()
    with serve_http(type("Handler", (_Handler,), {"api": api})) as url:
        api.url = f"{url}/v1"
        yield api

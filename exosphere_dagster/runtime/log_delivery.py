"""One log sink's delivery: a bounded queue of records and a sender thread, so that a slow,
down or throttling sink never holds up the step that logs.

Records go out in order, ``records_per_send`` at a time (fewer when the step flushes). A send
is retried with the sink's own ``retries`` and ``delay``, waiting what ``RetrySettings.wait_for``
says (the backoff, or longer when the sink passed a ``Retry-After`` in :class:`RetryableError`:
the same rule as a satellite's item retries in ``runtime/execute.py``); a :class:`PartialDelivery` retries
only what did not arrive, so a record is sent once. Nothing here raises into the step: a full
queue drops the newest records, a batch still failing after its retries is dropped, and
whatever is unsent when the step's drain deadline passes is dropped too. Every drop is counted
in :class:`SinkStats`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from exosphere_dagster.runtime.secrets import redact
from satellite_ops.errors import FatalError, RetryableError
from satellite_ops.helpers.log_sinks import PartialDelivery
from yaml_loader.ir import RetrySettings
from yaml_loader.templates import TemplateEvaluationError

logger = logging.getLogger("exosphere.logs")

Send = Callable[[list[dict[str, Any]]], Any]


@dataclass
class SinkStats:
    """What happened to one sink's records in one step."""

    sink: str
    sent: int = 0  # records the sink accepted (handed over without an error)
    queue_full: int = 0  # dropped at once: the bounded queue was full
    gave_up: int = 0  # dropped after the sink's retries (or at once: a fatal error)
    unsent: int = 0  # still queued or in flight when the drain deadline passed
    retries: int = 0  # attempts after the first, over all batches
    last_error: str | None = None

    @property
    def dropped(self) -> int:
        return self.queue_full + self.gave_up + self.unsent

    def summary(self) -> str:
        """One line for the step's log."""
        parts = [
            f"{n} {why}"
            for n, why in (
                (self.queue_full, "queue full"),
                (self.gave_up, "failed after retries"),
                (self.unsent, "unsent at step end"),
            )
            if n
        ]
        text = f"log sink {self.sink}: {self.sent} record(s) sent, {self.dropped} dropped"
        text += f" ({', '.join(parts)})" if parts else ""
        return text + (f"; last error: {self.last_error}" if self.last_error else "")


def retry_after_of(exc: BaseException) -> float | None:
    """The wait an error asked for (``RetryableError(retry_after=...)``), if any."""
    return exc.retry_after if isinstance(exc, RetryableError) else None


def _fatal(exc: BaseException) -> bool:
    return isinstance(exc, FatalError | ValidationError | TemplateEvaluationError)


@dataclass
class SinkWorker:
    """A sink's bounded queue; its thread lives only while there is something to send."""

    name: str
    send: Send
    retry: RetrySettings
    records_per_send: int = 500
    capacity: int = 20_000
    stats: SinkStats = field(init=False)

    def __post_init__(self) -> None:
        self.stats = SinkStats(self.name)
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._in_flight: list[dict[str, Any]] = []
        self._flush = False  # send what is queued even if it is less than a batch
        self._deadline: float | None = None  # set by drain: give up at this monotonic time
        self._hurry = threading.Event()  # cuts a retry wait short when drain is called
        self._abandoned = False

    def put(self, record: dict[str, Any]) -> None:
        """Queue a record; never blocks. A full queue drops it (counted)."""
        with self._lock:
            if self._abandoned:
                self.stats.unsent += 1
                return
            if len(self._queue) >= self.capacity:
                self.stats.queue_full += 1
                return
            self._queue.append(record)
            if len(self._queue) >= self.records_per_send:
                self._start()

    def drain(self, seconds: float) -> bool:
        """Send everything queued, waiting at most ``seconds`` (a retry whose wait would end
        after that gives up at once); what is still unsent then is dropped (counted) and this
        worker takes no more records. True when all was sent."""
        with self._lock:
            self._deadline = time.monotonic() + max(0.0, seconds)
            self._flush = True
            if self._queue:
                self._start()
            thread = self._thread
        self._hurry.set()
        if thread is not None:
            thread.join(timeout=max(0.0, seconds))
        with self._lock:
            if self._thread is None and not self._queue:
                self._reset()  # all sent: the worker may take records again
                return True
            self.stats.unsent += len(self._queue) + len(self._in_flight)
            self._queue.clear()
            self._in_flight = []
            self._abandoned = True  # the thread may still be inside a call: ignore its result
            return False

    def _reset(self) -> None:
        self._deadline, self._flush = None, False
        self._hurry.clear()

    def _start(self) -> None:  # with the lock held
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"exosphere-log-sink-{self.name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._abandoned or not (
                    len(self._queue) >= self.records_per_send or (self._flush and self._queue)
                ):
                    self._thread = None
                    return
                count = min(self.records_per_send, len(self._queue))
                self._in_flight = [self._queue.popleft() for _ in range(count)]
            self._deliver()

    def _deliver(self) -> None:
        attempt = 0
        while True:
            batch = self._in_flight
            try:
                self.send(list(batch))
            except Exception as exc:  # noqa: BLE001 - a log sink never fails the run
                delivered = exc.delivered if isinstance(exc, PartialDelivery) else 0
                cause = exc.cause if isinstance(exc, PartialDelivery) else exc
                with self._lock:
                    if self._abandoned:
                        return
                    self.stats.sent += delivered
                    self._in_flight = batch[delivered:]
                    self.stats.last_error = redact(f"{type(cause).__name__}: {cause}")[:500]
                attempt += 1
                if _fatal(cause) or attempt > self.retry.retries or not self._pause(attempt, cause):
                    self._give_up()
                    return
                with self._lock:
                    self.stats.retries += 1
                continue
            with self._lock:
                if not self._abandoned:
                    self.stats.sent += len(batch)
                    self._in_flight = []
            return

    def _pause(self, attempt: int, cause: BaseException) -> bool:
        """Wait before retry ``attempt``; False when the drain deadline leaves no time."""
        wait = self.retry.wait_for(attempt, retry_after_of(cause))
        end = time.monotonic() + wait
        while True:
            deadline = self._deadline
            if deadline is not None and end > deadline:
                return False
            remaining = end - time.monotonic()
            if remaining <= 0:
                return True
            if deadline is not None:  # the wait ends before the deadline: no need to wake
                time.sleep(remaining)
                return True
            self._hurry.wait(remaining)  # woken by drain: check its deadline

    def _give_up(self) -> None:
        with self._lock:
            if self._abandoned:
                return
            dropped, self._in_flight = len(self._in_flight), []
            self.stats.gave_up += dropped
            error = self.stats.last_error
        logger.warning("log sink %s failed (%d records dropped): %s", self.name, dropped, error)

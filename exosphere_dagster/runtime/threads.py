"""Worker threads for sync satellites: a call starts at once, and a stuck call is abandoned.

Why not ``asyncio.to_thread``: the loop's default executor holds ``min(32, cpus + 4)`` threads,
so it capped a satellite below its ``max_concurrency`` and queued the rest, and a timeout
around ``to_thread`` counted that queueing; a call that timed out kept its thread, so stuck
calls starved the items behind them; and ``asyncio.run`` joins that executor when it closes,
so one call that never returns hung the step forever.

Here the caller bounds how many calls run at once (its runners); each call goes to an idle
worker or a new one, so a thread stuck in a timed-out call holds no slot. Python cannot kill a
thread: a stuck one is abandoned. Workers are daemon threads that nobody joins, so neither the
step nor its process waits for them; one that returns later finds its loop closed and exits.

The loop is woken only to hear outcomes, and once for all the calls that finished since it
last heard (a no-op satellite's calls finish together). A worker stamps the time it begins a
call on the :class:`Call` instead of telling the loop; a task's calls share one timer
(:class:`CallWatch`), which reads the stamp only when a call may have run for ``timeout``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Outcome = tuple[bool, Any]  # (True, the result) or (False, the exception the call raised)


@dataclass(slots=True, eq=False)
class Call:
    """One blocking call handed to a worker: ``done`` resolves with its :data:`Outcome`;
    ``started`` is the loop time a worker began it (None while it waits for one)."""

    done: asyncio.Future[Outcome]
    started: float | None = None


class Workers:
    """Daemon threads that run blocking calls for one event loop (one chunk)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for a task, less the tasks queued for them
        self._threads = 0
        self._finished: list[tuple[Call, Outcome]] = []  # outcomes the loop has yet to hand out
        self._waking = False  # whether the loop has been asked to hand them out
        self._watches: dict[asyncio.Task[Any] | None, CallWatch] = {}  # loop thread only

    def submit(self, fn: Callable[[], Any], timeout: float | None = None) -> Call:
        """Run ``fn`` on a worker; the :class:`Call` resolves in the running loop, with
        ``TimeoutError`` once it has run ``timeout`` seconds (waiting for a worker never counts).
        Called from a task, which awaits the call before it submits another."""
        loop = asyncio.get_running_loop()
        call = Call(loop.create_future())
        if timeout is not None:
            task = asyncio.current_task()
            watch = self._watches.get(task)
            if watch is None:
                watch = self._watches[task] = CallWatch(loop)
            watch.track(call, timeout)
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._threads += 1
            else:
                self._idle -= 1
        self._tasks.put((loop, call, fn))
        if spawn:
            name = f"{self._name}-{self._threads}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        return call

    def busy(self) -> int:
        """Workers still inside a call (stuck ones included)."""
        with self._lock:
            return self._threads - self._idle

    def shutdown(self) -> None:
        """Let every worker exit once it is free; joins nothing."""
        with self._lock:
            count, self._threads, self._idle = self._threads, 0, 0
        for _ in range(count):
            self._tasks.put(None)

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            loop, call, fn = task
            call.started = loop.time()
            try:
                outcome: Outcome = (True, fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, whatever it is
                outcome = (False, exc)
            with self._lock:  # idle before the caller hears: busy() counts unfinished calls only
                self._idle += 1
                self._finished.append((call, outcome))
                wake, self._waking = not self._waking, True
            if wake:
                try:
                    loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # a closed loop: the step ended without this call
                    with self._lock:
                        self._finished.clear()
            del task, loop, call, fn, outcome  # hold nothing while idle

    def _deliver(self) -> None:
        """Hand the finished calls their outcomes, in the loop: one wake-up of the loop for all
        the calls that finished since the last one."""
        with self._lock:
            finished, self._finished, self._waking = self._finished, [], False
        for call, outcome in finished:
            if not call.done.done():  # timed out, or the caller was cancelled
                call.done.set_result(outcome)


class CallWatch:
    """Times out the one call a task has in flight after ``timeout`` seconds of running, with one
    timer for all the task's calls, re-armed only when it fires: a no-op call costs no timer.

    The timer fires first at the earliest moment the current call can be due (its submission
    + ``timeout``); a call still running then is checked again at its deadline (its worker's
    start + ``timeout``), and one no worker has begun yet ``timeout`` later."""

    __slots__ = ("_loop", "_call", "_timeout", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._call: Call | None = None
        self._timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def track(self, call: Call, timeout: float) -> None:
        """Watch ``call``, the task's new call (its previous one has ended)."""
        self._call, self._timeout = call, timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._loop.time() + timeout, self._check)

    def _check(self) -> None:
        self._timer = None
        call, timeout = self._call, self._timeout
        if call is None or call.done.done():
            self._call = None  # the task's next call arms the timer again
            return
        now, started = self._loop.time(), call.started
        if started is not None and started + timeout <= now:
            self._call = None
            call.done.set_exception(TimeoutError())  # the worker's outcome, if any, is dropped
            return
        due = now + timeout if started is None else started + timeout
        self._timer = self._loop.call_at(due, self._check)

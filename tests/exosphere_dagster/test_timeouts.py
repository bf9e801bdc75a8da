"""Sync satellites run at their configured concurrency, and ``timeout:`` measures the call alone:
waiting for a free slot never counts, a stuck call fails its item without holding a slot, and
the step ends without waiting for the stuck thread."""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager

import pytest
from test_execute import job_for, node

from exosphere_dagster.runtime.execute import run_chunk
from exosphere_dagster.runtime.items import seed_items

GUARD = 60.0  # seconds a condition may take before the test gives up (never reached when right)


class Flight:
    """Counts the calls in flight and their peak; lets a test wait for a count."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self.calls: Counter[int] = Counter()
        self.starts: list[float] = []
        self.returned = 0
        self.changed = threading.Condition()

    @contextmanager
    def call(self, n: int):
        with self.changed:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.calls[n] += 1
            self.starts.append(time.monotonic())
            self.changed.notify_all()
        try:
            yield
        finally:
            with self.changed:
                self.now -= 1
                self.returned += 1
                self.changed.notify_all()

    def wait_until(self, predicate) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout=GUARD)


def in_background(job, items):
    """Run the chunk in a thread; ``join()`` gives (children, report) or fails the test."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(run_chunk(job, items)), daemon=True)
    thread.start()

    def join():
        thread.join(GUARD)
        assert not thread.is_alive(), "the step did not finish"
        return out[0]

    return join


@pytest.mark.parametrize(
    ("max_concurrency", "concurrency", "count"),
    [(8, None, 16), (16, 40, 80)],
    ids=["max_concurrency=8", "concurrency=40"],
)
def test_sync_satellite_runs_at_its_configured_concurrency(
    caplog, max_concurrency, concurrency, count
):
    """More than the loop's default executor holds (min(32, cpus + 4) threads)."""
    flight, release = Flight(), threading.Event()
    limit = concurrency or max_concurrency

    def wait(config, input):
        with flight.call(input["n"]):
            release.wait(GUARD)
        return [{"n": input["n"]}]

    job, _ = job_for(
        wait, node(timeout=GUARD, concurrency=concurrency), max_concurrency=max_concurrency
    )
    join = in_background(job, seed_items([{"n": n} for n in range(count)]))
    try:
        assert flight.wait_until(lambda f: f.now == limit), f"only {flight.now} ran at once"
    finally:
        release.set()
    children, report = join()
    assert flight.peak == limit
    assert report.succeeded == count and not report.failed and len(children) == count
    assert not [r for r in caplog.records if "still running" in r.getMessage()]


def test_items_queued_behind_slow_ones_are_not_timed_out():
    """12 rounds of 0.25 s calls, 2 at a time: the last items wait ~2.75 s for a slot, far past
    the 1 s timeout, but each call takes a quarter of it."""
    flight = Flight()

    def slow(config, input):
        with flight.call(input["n"]):
            time.sleep(0.25)
        return [{"n": input["n"]}]

    job, _ = job_for(slow, node(retries=0, timeout=1.0), max_concurrency=2)
    children, report = run_chunk(job, seed_items([{"n": n} for n in range(24)]))
    assert max(flight.starts) - min(flight.starts) > 2.0  # the premise: queued well past 1 s
    assert not report.failed and report.succeeded == 24 and flight.peak == 2
    assert flight.calls == Counter(range(24))  # every item called once: none timed out unseen


def test_stuck_calls_time_out_alone_and_the_step_does_not_wait_for_them(monkeypatch, caplog):
    """32 calls that never return (as many as the loop's default executor could ever hold)
    and 16 quick ones behind them, 32 at a time. The stuck items time out (retried once: a
    second stuck call) and are abandoned; the quick ones run on fresh threads and succeed;
    the step returns while the stuck threads still block; they end later without errors."""
    thread_errors: list = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    flight, unstick = Flight(), threading.Event()

    def call(config, input):
        with flight.call(input["n"]):
            if input["n"] < 32:
                unstick.wait()  # stuck until the test is over
        return [{"n": input["n"]}]

    job, _ = job_for(call, node(retries=1, delay=0, timeout=1.0), max_concurrency=32)
    join = in_background(job, seed_items([{"n": n} for n in range(48)]))
    try:
        children, report = join()
        assert sorted(c.value["n"] for c in children) == list(range(32, 48))
        assert sorted(f.item.value["n"] for f in report.failed) == list(range(32))
        assert {(f.error, f.attempts) for f in report.failed} == {("timed out after 1.0s", 2)}
        assert report.items_in == 48 == report.succeeded + len(report.failed)
        assert flight.now == 64  # every stuck call is still blocked in its thread
        (abandoned,) = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
        assert abandoned.startswith("sat: 64 call(s) that timed out are still running")
        assert flight.calls == Counter(
            {**{n: 2 for n in range(32)}, **{n: 1 for n in range(32, 48)}}
        )
    finally:
        unstick.set()
    assert flight.wait_until(lambda f: f.now == 0)  # abandoned calls return into a closed loop
    assert thread_errors == []

"""A sync call's timeout counts from the moment a worker begins it, read from the stamp the
worker leaves on the call (runtime/threads.py): the loop is not woken to hear of the start, and
a task's calls share one timer."""

from __future__ import annotations

import asyncio

import pytest

from exosphere_dagster.runtime.threads import Call, CallWatch, Workers


def _call_begun_after(delay: float) -> Call:
    """A call of the running loop that a (pretend) worker begins ``delay`` seconds from now."""
    loop = asyncio.get_running_loop()
    call = Call(loop.create_future())

    def begin() -> None:
        call.started = loop.time()

    loop.call_later(delay, begin)
    return call


def test_a_call_still_waiting_for_a_worker_is_not_timed_out():
    async def scenario() -> tuple[bool, object]:
        call = _call_begun_after(0.3)  # after the first check, at 0.2
        asyncio.get_running_loop().call_later(0.35, call.done.set_result, (True, "ok"))
        CallWatch(asyncio.get_running_loop()).track(call, timeout=0.2)
        return await call.done

    assert asyncio.run(scenario()) == (True, "ok")


def test_a_call_times_out_once_it_has_run_for_the_timeout_since_it_began():
    async def scenario() -> tuple[float, Call]:
        loop = asyncio.get_running_loop()
        submitted = loop.time()
        call = _call_begun_after(0.1)
        CallWatch(loop).track(call, timeout=0.2)
        with pytest.raises(TimeoutError):
            await call.done
        return loop.time() - submitted, call

    elapsed, call = asyncio.run(scenario())
    assert elapsed >= 0.3  # 0.1 waiting for a worker + 0.2 running


def test_one_watch_times_out_each_of_a_tasks_calls_by_its_own_start():
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        watch, ends = CallWatch(loop), []
        for _ in range(3):  # quick calls: the timer armed by the first is not re-armed
            call = _call_begun_after(0.0)
            watch.track(call, timeout=0.3)
            loop.call_later(0.01, call.done.set_result, (True, None))
            await call.done
            ends.append("ok")
        await asyncio.sleep(0.2)
        slow = _call_begun_after(0.0)  # submitted 0.2 after the timer was armed
        watch.track(slow, timeout=0.3)
        started = loop.time()
        with pytest.raises(TimeoutError):
            await slow.done
        ends.append("timed out" if loop.time() - started >= 0.3 else "too early")
        return ends

    assert asyncio.run(scenario()) == ["ok", "ok", "ok", "timed out"]


def test_workers_stamp_the_start_and_return_the_outcome():
    async def scenario() -> tuple[Call, tuple[bool, object], float]:
        workers = Workers("test-threads")
        submitted = asyncio.get_running_loop().time()
        try:
            call = workers.submit(lambda: 42, timeout=5.0)
            return call, await call.done, submitted
        finally:
            workers.shutdown()

    call, outcome, submitted = asyncio.run(scenario())
    assert outcome == (True, 42) and call.started is not None and call.started >= submitted

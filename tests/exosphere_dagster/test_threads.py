"""A sync call's timeout counts from the moment a worker begins it, read from the stamp the
worker leaves on the call (runtime/threads.py): the loop is not woken to hear of the start."""

from __future__ import annotations

import asyncio

import pytest

from exosphere_dagster.runtime.threads import Call, Workers, outcome_of


def test_a_call_still_waiting_for_a_worker_is_not_timed_out():
    async def scenario() -> tuple[bool, object]:
        loop = asyncio.get_running_loop()
        call = Call(loop.create_future())

        def begin() -> None:
            call.started = loop.time()

        loop.call_later(0.3, begin)  # a worker begins it after the first check (at 0.2)
        loop.call_later(0.35, call.done.set_result, (True, "ok"))
        return await outcome_of(call, timeout=0.2)

    assert asyncio.run(scenario()) == (True, "ok")


def test_a_call_times_out_once_it_has_run_for_the_timeout_since_it_began():
    async def scenario() -> tuple[float, Call]:
        loop = asyncio.get_running_loop()
        call = Call(loop.create_future())
        submitted = loop.time()

        def begin() -> None:
            call.started = loop.time()

        loop.call_later(0.1, begin)
        with pytest.raises(TimeoutError):
            await outcome_of(call, timeout=0.2)
        return loop.time() - submitted, call

    elapsed, call = asyncio.run(scenario())
    assert elapsed >= 0.3  # 0.1 waiting for a worker + 0.2 running
    assert call.done.done()  # the worker's late outcome is dropped


def test_workers_stamp_the_start_and_return_the_outcome():
    async def scenario() -> tuple[Call, tuple[bool, object], float]:
        workers = Workers("test-threads")
        submitted = asyncio.get_running_loop().time()
        try:
            call = workers.submit(lambda: 42)
            return call, await outcome_of(call, timeout=None), submitted
        finally:
            workers.shutdown()

    call, outcome, submitted = asyncio.run(scenario())
    assert outcome == (True, 42) and call.started is not None and call.started >= submitted

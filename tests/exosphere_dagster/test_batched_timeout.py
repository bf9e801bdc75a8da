"""``timeout:`` bounds a batched satellite's one call per chunk like any other call: a call
that runs past it fails (or retries) every item of the call, async or sync (issue 19)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from test_execute import job_for, node

from exosphere_dagster.runtime.execute import run_chunk
from exosphere_dagster.runtime.items import seed_items


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_batched_call_past_its_timeout_fails_every_item_of_the_call(kind):
    released = threading.Event()
    calls: list[int] = []

    async def stuck_async(items):
        calls.append(len(items))
        await asyncio.Event().wait()  # never set: only the timeout ends this call

    def stuck_sync(items):
        calls.append(len(items))
        released.wait(30)
        return [[] for _ in items]

    fn = stuck_async if kind == "async" else stuck_sync
    job, waits = job_for(fn, node(retries=1, delay=0.5, timeout=0.2), batched=True)
    try:
        _, report = run_chunk(job, seed_items([{}, {}, {}]))
    finally:
        released.set()  # the abandoned sync thread returns
    assert calls == [3, 3] and waits == [0.5]  # the timed-out call was retried once, whole
    assert [f.error for f in report.failed] == ["timed out after 0.2s"] * 3
    assert [f.attempts for f in report.failed] == [2, 2, 2] and report.succeeded == 0

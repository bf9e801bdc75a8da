"""The step body alone (no Dagster): retries, backoff, fatal errors, timeouts, batching, checkpoints."""

from __future__ import annotations

import asyncio
import logging
import pickle

import pytest
from pydantic import BaseModel

from exosphere_dagster.resolve.chunking import chunk_size, split
from exosphere_dagster.runtime.checkpoint import CheckpointStore
from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
from exosphere_dagster.runtime.items import seed_items
from satellite_ops.errors import FatalError, RetryableError
from satellite_ops.registry import define_satellite
from yaml_loader.ir import RetrySettings, SatelliteNode
from yaml_loader.templates import compile_value


class Cfg(BaseModel):
    label: str = ""


def node(
    retries: int = 3, delay: float = 1.0, config=None, timeout=None, concurrency=None
) -> SatelliteNode:
    return SatelliteNode(
        id="sat",
        op_name="sat",
        name="sat",
        uses="satellite/test/x",
        branch="main",
        parents=(),
        config=compile_value(config or {}),
        input=None,
        retry=RetrySettings(retries, delay),
        timeout=timeout,
        concurrency=concurrency,
        resources=None,
        secrets=frozenset(),
        line=1,
        column=1,
    )


def job_for(
    fn, n: SatelliteNode, batched: bool = False, checkpoint=None, max_concurrency: int = 16
) -> tuple[ChunkJob, list[float]]:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    definition = define_satellite(
        "satellite/test/x", fn, Cfg, batched=batched, max_concurrency=max_concurrency
    )
    job = ChunkJob(
        node=n,
        definition=definition,
        base_scope={},
        log=logging.getLogger("t"),
        sleep=fake_sleep,
        checkpoint=checkpoint,
    )
    return job, waits


def test_retries_back_off_exponentially_and_honour_retry_after():
    attempts = {"n": 0}

    def flaky(config, input):
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ConnectionError("reset")
        if attempts["n"] == 2:
            raise RetryableError("slow down", retry_after=30)
        if attempts["n"] == 3:
            raise TimeoutError("again")
        return [{"ok": True}]

    job, waits = job_for(flaky, node(retries=3, delay=1.0))
    children, report = run_chunk(job, seed_items([{}]))
    assert [c.value for c in children] == [{"ok": True}]
    assert waits == [1.0, 30.0, 4.0]  # delay*2^0, Retry-After beats delay*2^1, delay*2^2
    assert report.attempts == 4 and not report.failed


def test_fatal_error_is_not_retried_and_exhausted_retries_fail_the_item():
    def fatal(config, input):
        raise FatalError("bad request")

    job, waits = job_for(fatal, node(retries=5))
    _, report = run_chunk(job, seed_items([{}]))
    assert waits == [] and report.failed[0].attempts == 1
    assert report.failed[0].error == "FatalError: bad request"

    job, waits = job_for(lambda c, i: 1 / 0, node(retries=2, delay=0.5))
    _, report = run_chunk(job, seed_items([{}, {}]))
    assert [f.attempts for f in report.failed] == [3, 3] and sorted(waits) == [0.5, 0.5, 1.0, 1.0]


def test_output_shape_templates_and_timeout():
    job, _ = job_for(lambda c, i: "not a list", node(retries=4))
    _, report = run_chunk(job, seed_items([{}]))
    assert (
        "must return a list of objects" in report.failed[0].error and report.failed[0].attempts == 1
    )
    job, _ = job_for(lambda c, i: [{"name": "ok"}, 1], node())
    _, report = run_chunk(job, seed_items([{}]))
    assert report.failed[0].error.endswith("returned a list whose entry 1 is int")

    job, _ = job_for(
        lambda c, i: [{"label": c.label}], node(config={"label": "${{ run.input.name }}"})
    )
    job.base_scope = {"run": {}}
    children, _ = run_chunk(job, seed_items([{"name": "a"}, {"name": "b"}]))
    assert [c.value["label"] for c in children] == ["a", "b"]

    async def slow(config, input):
        await asyncio.sleep(5)

    job, _ = job_for(slow, node(retries=0, timeout=0.05))
    _, report = run_chunk(job, seed_items([{}]))
    assert report.failed[0].error == "timed out after 0.05s"


def test_concurrency_is_bounded():
    state = {"now": 0, "peak": 0}

    async def track(config, input):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return []

    job, _ = job_for(track, node(concurrency=3))
    _, report = run_chunk(job, seed_items([{}] * 20))
    assert state["peak"] == 3 and report.succeeded == 20 and report.ended == 20


def test_batched_satellite_gets_one_call_per_chunk_and_retries_only_failures():
    calls: list[int] = []

    def batch(items):
        calls.append(len(items))
        return [
            ValueError("bad json")
            if i.input["n"] == 2 and len(calls) == 1
            else [{"n": i.input["n"]}]
            for i in items
        ]

    job, waits = job_for(batch, node(retries=2, delay=0.1), batched=True)
    children, report = run_chunk(job, seed_items([{"n": n} for n in range(5)]))
    assert calls == [5, 1] and waits == [0.1]
    assert sorted(c.value["n"] for c in children) == [0, 1, 2, 3, 4] and not report.failed


def test_checkpoint_resumes_finished_items_and_ignores_a_torn_frame(tmp_path):
    store = CheckpointStore(tmp_path)
    calls: list[str] = []

    def record(config, input):
        calls.append(input["n"])
        if input["n"] == "c":
            raise FatalError("stop")
        return [{"done": input["n"]}]

    items = seed_items([{"n": "a"}, {"n": "b"}, {"n": "c"}])
    job, _ = job_for(record, node(retries=0), checkpoint=store.log_for("run1", "sat", "c00000"))
    run_chunk(job, items)
    path = tmp_path / "run1" / "sat" / "c00000.ckpt"
    with path.open("ab") as fh:  # a process killed mid-write leaves half a frame
        fh.write(pickle.dumps(("x", [{}]))[:7])
    calls.clear()
    job, _ = job_for(record, node(retries=0), checkpoint=store.log_for("run1", "sat", "c00000"))
    children, report = run_chunk(job, items)
    assert calls == ["c"] and report.resumed == 2
    assert [c.value for c in children] == [{"done": "a"}, {"done": "b"}]


@pytest.mark.parametrize(
    ("count", "sla", "batched", "expected"),
    [
        (0, "6h", False, 10),
        (100, "6h", False, 10),
        (10_000, "6h", False, 157),
        (100_000, "6h", False, 500),
        (100, "24h", False, 200),
        (10_000, "24h", False, 200),
        (1_000_000, "24h", False, 10_000),
        (100, "6h", True, 8),
        (100, "24h", True, 256),
    ],
)
def test_chunk_size_follows_tier_and_count(count, sla, batched, expected):
    assert chunk_size(count, sla, batched) == expected


def test_split_always_yields_a_chunk():
    assert split([], 10) == [[]]
    assert split(list(range(25)), 10) == [list(range(10)), list(range(10, 20)), list(range(20, 25))]


def test_satellite_metrics_add_up_in_the_step_report():
    def count(items):
        for item in items:
            metrics = item.context.metrics
            metrics["llm/completion_tokens"] = metrics.get("llm/completion_tokens", 0) + 7
        return [[{"ok": True}] for _ in items]

    job, _ = job_for(count, node(), batched=True)
    _, report = run_chunk(job, seed_items([{}] * 3))
    assert report.metrics["llm/completion_tokens"] == 21 and "seconds" in report.metrics


def test_batched_attempts_follow_the_per_item_policy(caplog):
    """Same backoff, Retry-After, fatal errors and attempt log lines as one item at a time; a
    retried round waits for the longest wait any of its items asks for."""
    calls: list[list[int]] = []

    def batch(items):
        calls.append([i.input["n"] for i in items])
        outcomes = []
        for i in items:
            n, first = i.input["n"], len(calls) == 1
            if n == 1 and first:
                outcomes.append(RetryableError("throttled", retry_after=30))
            elif n == 2 and first:
                outcomes.append(ConnectionError("reset"))
            elif n == 3:
                outcomes.append(FatalError("bad request"))
            else:
                outcomes.append([{"n": n}])
        return outcomes

    caplog.set_level(logging.WARNING, logger="t")
    job, waits = job_for(batch, node(retries=2, delay=1.0), batched=True)
    children, report = run_chunk(job, seed_items([{"n": n} for n in range(4)]))
    assert calls == [[0, 1, 2, 3], [1, 2]] and waits == [30.0]
    assert sorted(c.value["n"] for c in children) == [0, 1, 2]
    assert [(f.error, f.attempts) for f in report.failed] == [("FatalError: bad request", 1)]
    assert sorted(r.getMessage() for r in caplog.records) == [
        "sat: attempt 1/3 failed: ConnectionError: reset (will retry)",
        "sat: attempt 1/3 failed: FatalError: bad request",
        "sat: attempt 1/3 failed: RetryableError: throttled (will retry)",
    ]

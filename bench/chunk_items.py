"""Per-item cost of a chunk step: `run_chunk` over N items against the bare loop, no Dagster.

`run_chunk` (exosphere_dagster/runtime/execute.py) is the body of every satellite step: it
renders the node's config for each item, calls the satellite with retries, a timeout and a
concurrency bound, checkpoints each item as it finishes and builds the child items. Here it runs
a no-op satellite over N items (default 10,000) that already went through 4 satellites, with a
file checkpoint log and one run secret (ids are checked against it), as a step of a cluster
does: async and sync, each without and with a `timeout:` (60 s, never reached), and an async
one whose config is a template read from the item (`${{ satellites.s3.output.key }}`).
Baseline, measured in the same round: the bare loop that calls the satellite function directly
on every item and builds the child items (`item.child(...)`): what no framework could avoid.
Prints microseconds per item (median over rounds) and the ratio to the baseline.
Goal (issue 24): 1,000,000 items x 6 no-op satellites in <= 5 minutes on 2 CPUs, so a step's
own cost must be a small part of 300 s / 6,000,000 item-steps x 2 CPUs = 100 us per item.

    .venv/bin/python bench/chunk_items.py [--items 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from exosphere_dagster.runtime.checkpoint import CheckpointStore
from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
from exosphere_dagster.runtime.items import Item, seed_items
from satellite_ops.registry import define_satellite
from yaml_loader.ir import RetrySettings, SatelliteNode
from yaml_loader.templates import compile_value

SECRET = "bench-secret-value-0123456789"
DEPTH = 4  # satellites the items already went through


class NoopConfig(BaseModel):
    label: str = ""


async def async_noop(config: NoopConfig, input: dict[str, Any]) -> list[dict[str, Any]]:
    return [input]


def sync_noop(config: NoopConfig, input: dict[str, Any]) -> list[dict[str, Any]]:
    return [input]


TEMPLATED = {"label": "${{ satellites.s3.output.key }}"}
CASES: dict[str, tuple[Callable[..., Any], dict[str, Any], float | None]] = {
    "async no-op": (async_noop, {"label": "static"}, None),
    "async no-op, timeout": (async_noop, {"label": "static"}, 60.0),
    "sync no-op": (sync_noop, {"label": "static"}, None),
    "sync no-op, timeout": (sync_noop, {"label": "static"}, 60.0),
    "async, templated config": (async_noop, TEMPLATED, None),
}


def items_for(count: int) -> list[Item]:
    """``count`` items that went through ``DEPTH`` satellites, each named by a key."""
    items = seed_items([{"key": f"in/doc-{i}.pdf", "n": i} for i in range(count)], (SECRET,))
    for depth in range(DEPTH):
        items = [item.child(f"s{depth}", 0, item.value, (SECRET,)) for item in items]
    return items


def node_for(config: dict[str, Any], timeout: float | None) -> SatelliteNode:
    return SatelliteNode(
        id="noop",
        op_name="noop",
        name="noop",
        uses="satellite/bench/noop",
        branch="main",
        parents=(),
        config=compile_value(config),
        input=None,
        retry=RetrySettings(3, 1.0),
        timeout=timeout,
        concurrency=None,
        resources=None,
        secrets=frozenset(),
        line=1,
        column=1,
    )


def bare_loop(fn: Callable[..., Any], items: list[Item]) -> float:
    """Seconds to call ``fn`` on every item and build the children, nothing else."""
    config = NoopConfig(label="static")

    async def each() -> list[Item]:
        children = []
        for item in items:
            outputs = await fn(config, item.value)
            children.extend(item.child("noop", i, o, (SECRET,)) for i, o in enumerate(outputs))
        return children

    started = time.perf_counter()
    if asyncio.iscoroutinefunction(fn):
        children = asyncio.run(each())
    else:
        children = []
        for item in items:
            outputs = fn(config, item.value)
            children.extend(item.child("noop", i, o, (SECRET,)) for i, o in enumerate(outputs))
    seconds = time.perf_counter() - started
    assert len(children) == len(items)
    return seconds


def chunk_step(
    fn: Callable[..., Any], config: dict[str, Any], timeout: float | None, items: list[Item]
) -> float:
    """Seconds of one ``run_chunk`` over ``items`` with a fresh file checkpoint log."""
    with tempfile.TemporaryDirectory() as folder:
        job = ChunkJob(
            node=node_for(config, timeout),
            definition=define_satellite("satellite/bench/noop", fn, NoopConfig),
            base_scope={"secrets": {}},
            log=logging.getLogger("bench"),
            checkpoint=CheckpointStore(folder).log_for("run", "noop", "c0"),
            secret_values=(SECRET,),
        )
        started = time.perf_counter()
        children, report = run_chunk(job, items)
        seconds = time.perf_counter() - started
    assert report.succeeded == len(items) and len(children) == len(items), report
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    items = items_for(args.items)
    per_item = 1e6 / args.items
    rows = []
    print(f"{args.items} items, {args.rounds} rounds; us per item, median over rounds")
    print()
    print(f"{'satellite':26} {'bare loop':>10} {'run_chunk':>10} {'ratio':>7}")
    for name, (fn, config, timeout) in CASES.items():
        bare, step, ratios = [], [], []
        for _ in range(args.rounds):
            bare.append(bare_loop(fn, items) * per_item)
            step.append(chunk_step(fn, config, timeout, items) * per_item)
            ratios.append(step[-1] / bare[-1])
        rows.append(statistics.median(step))
        print(
            f"{name:26} {statistics.median(bare):10.1f} {statistics.median(step):10.1f} "
            f"{statistics.median(ratios):7.2f}"
        )
    print()
    worst = max(rows)
    print(
        f"6,000,000 item-steps (1,000,000 items x 6 satellites) at the slowest case "
        f"({worst:.1f} us per item): {worst * 6:.0f} s of run_chunk on one CPU "
        "(goal: the whole run <= 300 s on 2 CPUs)"
    )


if __name__ == "__main__":
    main()

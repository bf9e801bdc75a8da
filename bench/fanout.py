"""Fan-out cost: exosphere's batched items vs one Dagster step per item.

Both run on a SQLite instance with the multiprocess executor (what `dagster dev` and Kubernetes
use), each with its job's default start method: exosphere's steps fork from a preloaded
forkserver, the plain chain's are spawned. Exosphere: one generator satellite then 5 no-op
satellites over N items (default 10,000).
Baseline: the same chain as plain Dagster `DynamicOut` + `.map` (one step per item per op) over
a smaller M (default 50), reported per item. Prints both and the per-item ratio.

    .venv/bin/python bench/fanout.py [--items 10000] [--baseline-items 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from dagster import (
    DagsterInstance,
    DynamicOut,
    DynamicOutput,
    execute_job,
    job,
    op,
    reconstructable,
)

HERE = Path(__file__).resolve().parent
BASELINE_ITEMS = int(os.environ.get("BENCH_BASELINE_ITEMS", "50"))

CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: bench/fanout
  sla: 24h
  trigger: api-call
  satellites:
    - uses: satellite/bench/generate
      identifier: generate
      config: {{count: {count}}}
{noops}
"""


@op(out=DynamicOut())
def emit_items():
    for i in range(BASELINE_ITEMS):
        yield DynamicOutput({"n": i}, mapping_key=str(i))


@op
def noop_1(item):
    return item


@op
def noop_2(item):
    return item


@op
def noop_3(item):
    return item


@op
def noop_4(item):
    return item


@op
def noop_5(item):
    return item


@job
def plain_dagster_chain():
    emit_items().map(noop_1).map(noop_2).map(noop_3).map(noop_4).map(noop_5)


MULTIPROCESS = {"execution": {"config": {"multiprocess": {"max_concurrent": os.cpu_count() or 2}}}}


def step_times(instance: DagsterInstance, run_id: str) -> tuple[float, float]:
    """Seconds from run start until the first chunk finished the last satellite, and until the
    first chained satellite finished all its chunks: streaming shows as first << second."""
    records = instance.all_logs(run_id)
    start = min(r.timestamp for r in records)
    done = [
        (r.step_key or "", r.timestamp)
        for r in records
        if r.dagster_event and r.dagster_event.event_type_value == "STEP_SUCCESS"
    ]
    first_last = min(t for k, t in done if k.startswith("noop_5["))
    last_first = max(t for k, t in done if k.startswith("noop_1["))
    return first_last - start, last_first - start


def run_exosphere(items: int, home: Path) -> tuple[float, tuple[float, float]]:
    from exosphere_dagster.entry.launch import run_config
    from exosphere_dagster.entry.reconstruct import reconstructable_job

    noops = "\n".join(
        f"    - uses: satellite/bench/noop\n      identifier: noop-{i}" for i in range(1, 6)
    )
    path = home / "fanout.yml"
    path.write_text(CLUSTER.format(count=items, noops=noops))
    instance = DagsterInstance.get()
    config = run_config([{}], multiprocess=True, log_level="WARNING")
    config["execution"] = MULTIPROCESS["execution"]
    started = time.perf_counter()
    with execute_job(reconstructable_job(path), instance=instance, run_config=config) as result:
        assert result.success, "exosphere run failed"
        tags = instance.get_run_by_id(result.run_id).tags
    elapsed = time.perf_counter() - started
    assert tags["exosphere/succeeded"] == str(items), tags
    return elapsed, step_times(instance, result.run_id)


def run_baseline() -> float:
    instance = DagsterInstance.get()
    config = {**MULTIPROCESS, "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    started = time.perf_counter()
    with execute_job(
        reconstructable(plain_dagster_chain), instance=instance, run_config=config
    ) as result:
        assert result.success, "baseline run failed"
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--baseline-items", type=int, default=BASELINE_ITEMS)
    args = parser.parse_args()
    os.environ["BENCH_BASELINE_ITEMS"] = str(args.baseline_items)
    os.environ["EXOSPHERE_SATELLITE_MODULES"] = "bench_satellites"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE), os.environ.get("PYTHONPATH")])
    )
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = str(home)
        ours, (first_through, first_sat_done) = run_exosphere(args.items, home)
        base = run_baseline()
    ours_per_item = ours / args.items
    base_per_item = base / args.baseline_items
    print(f"cpu cores: {os.cpu_count()}; SQLite instance; multiprocess executor")
    print(
        f"exosphere: {args.items} items x 6 satellites in {ours:.1f} s = {ours_per_item * 1000:.2f} ms/item"
    )
    print(
        f"plain dagster DynamicOut/.map: {args.baseline_items} items x 6 ops in {base:.1f} s = "
        f"{base_per_item * 1000:.1f} ms/item"
    )
    print(
        f"ratio (per item, plain / exosphere): {base_per_item / ours_per_item:.0f}x (goal: >= 50x)"
    )
    print(
        f"streaming: first chunk through the last satellite at {first_through:.1f} s; "
        f"first chained satellite finished all its chunks at {first_sat_done:.1f} s"
    )


if __name__ == "__main__":
    main()

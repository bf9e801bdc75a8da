"""Step cost with 200 clusters in the folder against one: a step builds only its own job.

The same 3-item, 2-satellite cluster runs through `dagster job execute` (SQLite, default
executor) from two folders: one holding only it, one holding it and 199 generated clusters of
20 satellites each (the files of bench/load_clusters.py, 3 MB in all). A step's cost is the
time from STEP_WORKER_STARTING to STEP_SUCCESS in the event log, averaged over the run's steps
except the first (which also waits for the forkserver to start). Rounds alternate the two
folders; the ratio is the median over rounds. Goal (issue 11): at most 1.10.

    .venv/bin/python bench/step_cost.py [--rounds 5] [--clusters 200]
"""

from __future__ import annotations

import argparse
import statistics

from cli_runs import (
    TINY_INPUTS,
    Result,
    alone_and_crowded,
    alternate,
    execute,
    median,
    step_seconds,
)

TARGET = ["-m", "exosphere_dagster.definitions", "-j", "bench__tiny"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clusters", type=int, default=200)
    args = parser.parse_args()

    with alone_and_crowded(args.clusters) as (alone, crowded):
        inputs = TINY_INPUTS

        def run(ws, label: str):
            def go() -> Result:
                result = execute(label, ws, TARGET, ws.run_config("tiny", inputs))
                result.steps = step_seconds(ws)
                return result

            return go

        variants = [
            ("1 cluster", run(alone, "1 cluster in the folder")),
            (f"{args.clusters} clusters", run(crowded, f"{args.clusters} clusters in the folder")),
        ]
        table = alternate(args.rounds, variants)

    def step_mean(result: Result) -> float:
        first = min(result.steps, key=lambda k: 0 if k == "exosphere__start" else 1)
        return statistics.mean(v for k, v in result.steps.items() if k != first)

    print()
    print(f"{'folder':22} {'step s (median)':>16} {'run s (median)':>15}")
    for i, (name, _) in enumerate(variants):
        steps = [step_mean(row[i]) for row in table]
        runs = [row[i].seconds for row in table]
        print(f"{name:22} {median(steps):16.3f} {median(runs):15.1f}")
    step_ratio = median([step_mean(row[1]) / step_mean(row[0]) for row in table])
    run_ratio = median([row[1].seconds / row[0].seconds for row in table])
    verdict = "met" if step_ratio <= 1.10 else "NOT met"
    print()
    print(f"step cost, {args.clusters} clusters / 1: {step_ratio:.3f} (goal <= 1.10: {verdict})")
    print(f"run wall time, {args.clusters} clusters / 1: {run_ratio:.3f}")


if __name__ == "__main__":
    main()

"""A large run: 100,000 items through a generator and 5 no-op satellites, peak memory of every process.

One `dagster job execute` run (SQLite, default executor) of a 24h cluster: a generator emits N
items (default 100,000), then 5 no-op satellites. Resident memory of the run process, the
forkserver and every step forked from it is sampled from /proc every 0.1 s; the kernel's own
peak for the whole process tree (`ru_maxrss` of the waited-for children) is printed beside it.
Goal (issue 11): the run completes with every item succeeded and no process above 1 GB.

    .venv/bin/python bench/large_run.py [--items 100000] [--satellites 5]
"""

from __future__ import annotations

import argparse
import os
import resource

from cli_runs import cluster_yaml, execute, step_seconds, workspace

LIMIT_MB = 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--satellites", type=int, default=5)
    args = parser.parse_args()

    with workspace() as ws:
        (ws.clusters / "large.yml").write_text(
            cluster_yaml("bench/large", args.satellites, generate=args.items)
        )
        target = ["-m", "exosphere_dagster.definitions", "-j", "bench__large"]
        result = execute("large", ws, target, sample_rss=True, timeout=3600)
        if not result.ok:
            raise SystemExit("\n".join(result.output.splitlines()[-40:]))
        steps = step_seconds(ws)
        os.environ["DAGSTER_HOME"] = str(ws.home)
        from dagster import DagsterInstance

        with DagsterInstance.get() as instance:
            tags = instance.get_runs(limit=1)[0].tags
    kernel_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    chunks = sum(1 for key in steps if key.startswith("noop_1["))
    print(f"{os.cpu_count()} CPUs, SQLite instance, default executor")
    print(
        f"{args.items} items x {args.satellites + 1} satellites (generator + {args.satellites} "
        f"no-op): {result.seconds:.1f} s, {len(steps)} steps, {chunks} chunks per satellite"
    )
    print(
        f"items: {tags.get('exosphere/items')}, succeeded: {tags.get('exosphere/succeeded')}, "
        f"failed: {tags.get('exosphere/failed')}"
    )
    slowest = sorted(steps.items(), key=lambda kv: kv[1], reverse=True)[:4]
    print("slowest steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in slowest))
    print("peak resident memory (sampled every 0.1 s):")
    for kind, mb in sorted(result.peak_rss_mb.items()):
        print(f"  {kind:44} {mb:7.1f} MB")
    print(f"  largest process of the tree (kernel ru_maxrss) {kernel_peak:7.1f} MB")
    peak = max(result.peak_mb, kernel_peak)
    done = tags.get("exosphere/succeeded") == str(args.items)
    verdict = "met" if done and peak < LIMIT_MB else "NOT met"
    print(f"goal: all items succeed, every process under {LIMIT_MB} MB: {verdict}")


if __name__ == "__main__":
    main()

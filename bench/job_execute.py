"""Run cost through `dagster job execute`: cluster jobs against a plain 2-op Dagster job, side by side.

Every run is a fresh `dagster job execute` process on one SQLite instance with the job's default
executor (what a launch from the UI gets): the plain job with Dagster's default (a `spawn`ed
process per step), the cluster jobs with exosphere's (steps forked from a preloaded
forkserver). Each round runs every variant once, in turn, so the runs compared in a ratio ran
under the same load; the ratios are medians over the rounds.

* `tiny`: 3 items through 2 no-op satellites (5 steps: start, 2 satellites, 1 re-chunk, summary);
* `tiny, spawn`: the same with `start_method: spawn` in run config (Dagster's default), to show
  what the forkserver saves;
* `10k`: a generator emitting 10,000 items, then 5 no-op satellites (24h tier).

Goals: tiny / plain <= 1.0 (issue 11); 10k / plain <= 1.5 (issue 24; 3.0 in issue 11).

    .venv/bin/python bench/job_execute.py [--rounds 5] [--items 10000]
"""

from __future__ import annotations

import argparse
import os

from cli_runs import Result, alternate, by_variant, cluster_yaml, execute, median, workspace

MODULE = ["-m", "exosphere_dagster.definitions"]
SPAWN = {"execution": {"config": {"multiprocess": {"start_method": {"spawn": {}}}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--no-spawn", action="store_true", help="skip the spawn variant")
    args = parser.parse_args()

    with workspace() as ws:
        (ws.clusters / "tiny.yml").write_text(cluster_yaml("bench/tiny", 2))
        (ws.clusters / "fan.yml").write_text(cluster_yaml("bench/fan", 5, generate=args.items))
        inputs = {"ops": {"exosphere__start": {"config": {"inputs": [{"n": i} for i in range(3)]}}}}
        tiny_config = ws.run_config("tiny", inputs)
        spawn_config = ws.run_config("tiny-spawn", {**inputs, **SPAWN})

        def plain() -> Result:
            return execute("plain 2-op Dagster job", ws, ["-f", str(ws.plain_job)])

        def tiny() -> Result:
            return execute(
                "tiny: 3 items x 2 satellites", ws, [*MODULE, "-j", "bench__tiny"], tiny_config
            )

        def tiny_spawn() -> Result:
            return execute("tiny, spawn", ws, [*MODULE, "-j", "bench__tiny"], spawn_config)

        def fan() -> Result:
            return execute(f"{args.items} items x 6 satellites", ws, [*MODULE, "-j", "bench__fan"])

        variants = [("plain", plain), ("tiny", tiny), ("10k", fan)]
        if not args.no_spawn:
            variants.insert(2, ("tiny-spawn", tiny_spawn))
        print(f"{os.cpu_count()} CPUs, SQLite instance, default executors; {args.rounds} rounds")
        table = alternate(args.rounds, variants)

    names = [name for name, _ in variants]
    column, ratio = by_variant(table, names)
    print()
    print(f"{'variant':34} {'median s':>9} {'best s':>7}  ratio to plain (median of rounds)")
    labels = {
        "plain": "plain 2-op Dagster job (spawn)",
        "tiny": "tiny: 3 items x 2 satellites",
        "tiny-spawn": "tiny with start_method spawn",
        "10k": f"{args.items} items x 6 satellites",
    }
    for name in names:
        print(
            f"{labels[name]:34} {median(column[name]):9.1f} {min(column[name]):7.1f}  "
            f"{ratio[name]:.2f}"
        )
    print()
    tiny_ok = "met" if ratio["tiny"] <= 1.0 else "NOT met"
    fan_ok = "met" if ratio["10k"] <= 1.5 else "NOT met"
    print(f"goal tiny / plain <= 1.0: {ratio['tiny']:.2f} ({tiny_ok})")
    print(f"goal {args.items} items / plain <= 1.5: {ratio['10k']:.2f} ({fan_ok})")
    if "tiny-spawn" in ratio:
        print(
            f"forkserver saves: tiny with spawn / tiny = {ratio['tiny-spawn'] / ratio['tiny']:.2f}x"
        )


if __name__ == "__main__":
    main()

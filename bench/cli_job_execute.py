"""`dagster job execute -j` of one small cluster in a folder of 1 vs 200 large clusters: the run builds only its own job.

Dagster's command line checks the job name against the code location's job names before it
runs the job (``RepositoryDefinition.job_names``). The code location gives those names from the
loaded and planned files without building a job (exosphere_dagster/entry/location.py), and the
run, its run worker and its steps build the asked job alone. Three variants, each a fresh
``dagster job execute -m exosphere_dagster.definitions -j bench__tiny`` on a SQLite instance
(3 items through 2 no-op satellites):

* ``1 cluster``: the folder holds only the tiny cluster;
* ``200 clusters``: it and 199 clusters of 20 satellites (bench/load_clusters.py's files);
* ``200, folder built`` (the baseline, before): the same folder, with the job names listed
  by building every cluster, as the code location did before (set up in the process before
  Dagster's command line starts).

Rounds alternate the variants; ratios are medians over rounds. Goal (issue 24): 200 / 1 near 1.

    .venv/bin/python bench/cli_job_execute.py [--rounds 3] [--clusters 200]
"""

from __future__ import annotations

import argparse
import os

from cli_runs import TINY_INPUTS, alone_and_crowded, alternate, by_variant, execute, median

TARGET = ["-m", "exosphere_dagster.definitions", "-j", "bench__tiny"]
FOLDER_LISTING = (
    "-c",
    "import exosphere_dagster.definitions as location\n"
    "location.defs._repository_data._job_names = None  # list the names by building the folder\n"
    "from dagster._cli import main\n"
    "main()\n",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=200)
    args = parser.parse_args()

    with alone_and_crowded(args.clusters) as (alone, crowded):
        inputs = TINY_INPUTS

        def run(ws, python: tuple[str, ...] = ("-m", "dagster")):
            config = ws.run_config("tiny", inputs)
            return lambda: execute("bench__tiny", ws, TARGET, config, python=python)

        many = f"{args.clusters} clusters"
        before = f"{many}, folder built (before)"
        variants = [
            ("1 cluster", run(alone)),
            (many, run(crowded)),
            (before, run(crowded, FOLDER_LISTING)),
        ]
        print(f"{os.cpu_count()} CPUs, SQLite instance; {args.rounds} rounds", flush=True)
        table = alternate(args.rounds, variants)

    labels = [label for label, _ in variants]
    seconds, ratio = by_variant(table, labels)
    print()
    print(f"{'folder':38} {'median s':>9} {'best s':>7}  ratio to 1 cluster (median)")
    for label in labels:
        values = seconds[label]
        print(f"{label:38} {median(values):9.1f} {min(values):7.1f}  {ratio[label]:.2f}")
    print()
    print(f"{many} / 1 cluster: {ratio[many]:.2f} (goal: near 1; before: {ratio[before]:.2f})")
    extra = median(seconds[many]) - median(seconds["1 cluster"])
    saved = median(seconds[before]) - median(seconds[many])
    print(
        f"the {args.clusters - 1} other clusters cost {extra:.1f} s (their names); {saved:.1f} s saved"
    )


if __name__ == "__main__":
    main()

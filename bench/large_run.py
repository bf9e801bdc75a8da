"""A large run: N items through a generator and 5 no-op satellites, memory of every process; with
``--kill-at``, the same run SIGKILLed part-way and re-executed from failure.

One `dagster job execute` run (SQLite, default executor) of a 24h cluster: a generator emits N
items (default 100,000), then 5 no-op satellites. Resident memory of every process of the run's
tree (the run process, the forkserver, each step forked from it) is sampled from /proc every
0.2 s: the bench prints the largest single process (pid and role) and the largest total of the
tree at one moment (RSS summed: pages a fork shares are counted in each process).
Goal (issue 24): 1,000,000 items in <= 5 minutes on a 2-CPU machine, every process under 1 GB.

``--kill-at 0.5``: the satellites write each item they deliver to a ledger
(bench/ledger_satellites.py); when half of all deliveries are written, the whole process group
of `dagster job execute` gets SIGKILL. The run is then marked failed (what run monitoring does)
and re-executed from failure, as the UI's "Re-execute > From failure" does
(``ReexecutionOptions.from_failure``). Goal: every (satellite, item) in the ledger exactly once
over both runs: nothing lost, nothing done twice.

    .venv/bin/python bench/large_run.py [--items 100000] [--satellites 5] [--kill-at 0.5]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cli_runs import (
    REPO,
    Workspace,
    cluster_yaml,
    process_tree,
    rss_mb,
    step_seconds,
    workspace,
)

LIMIT_MB = 1024
JOB = "bench__large"
TARGET = ["-m", "exosphere_dagster.definitions", "-j", JOB]


@dataclass
class Tree:
    """Peak RSS of each process under a root, and of the tree as a whole."""

    peaks: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (role, MB)
    total_mb: float = 0.0

    def largest(self) -> tuple[int, str, float]:
        pid, (role, mb) = max(self.peaks.items(), key=lambda kv: kv[1][1])
        return pid, role, mb


def _role(pid: int, command: str, root: int, parents: dict[int, int]) -> str:
    if pid == root:
        return "run process"
    if "forkserver import main" in command:
        return "forkserver" if parents.get(pid) == root else "step forked from the forkserver"
    if "spawn_main" in command:
        return "step (spawn)"
    return command.split(" ", 1)[0].rsplit("/", 1)[-1] or "other"


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


class Sampler:
    def __init__(self, root: int, tree: Tree) -> None:
        self.root, self.tree = root, tree
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            total = 0.0
            processes = process_tree(self.root)
            parents = {pid: _parent(pid) for pid in processes}
            for pid, command in processes.items():
                mb = rss_mb(pid)
                total += mb
                role = _role(pid, command, self.root, parents)
                if mb > self.tree.peaks.get(pid, ("", 0.0))[1]:
                    self.tree.peaks[pid] = (role, mb)
            self.tree.total_mb = max(self.tree.total_mb, total)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(
    command: list[str], env: dict[str, str], tree: Tree, kill_when: Callable[[], bool] | None = None
) -> tuple[float, int, str]:
    """(seconds, exit status, output) of ``command`` in a process group of its own; with
    ``kill_when``, the whole group is SIGKILLed once it holds."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sampler = Sampler(proc.pid, tree)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        if kill_when is not None and kill_when():
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    seconds = time.perf_counter() - started
    sampler.stop()
    if kill_when is not None:  # the group's forked steps die with it, or on their own soon
        time.sleep(1.0)
    reader.join(timeout=10)
    return seconds, proc.returncode, b"".join(chunks).decode(errors="replace")


def reexecute_from_failure(run_id: str) -> None:
    """In a process of its own: mark the killed run failed, re-execute it from failure."""
    from dagster import DagsterInstance, ReexecutionOptions, execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    with DagsterInstance.get() as instance:
        parent = instance.get_run_by_id(run_id)
        assert parent is not None
        if not parent.is_finished:
            instance.report_run_failed(parent)  # what run monitoring does in a deployment
        repo = ReconstructableRepository.for_module(
            "exosphere_dagster.definitions", "defs", working_directory=str(REPO)
        )
        with execute_job(
            repo.get_reconstructable_job(JOB),
            instance=instance,
            run_config=parent.run_config,
            reexecution_options=ReexecutionOptions.from_failure(run_id, instance),
        ) as result:
            print("RUN_SUCCESS" if result.success else "RUN_FAILURE", result.run_id)


def latest_runs(ws: Workspace) -> list:
    os.environ["DAGSTER_HOME"] = str(ws.home)
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        return list(reversed(instance.get_runs()))


def report_memory(tree: Tree) -> bool:
    pid, role, mb = tree.largest()
    print(f"largest single process: pid {pid} ({role}) {mb:.1f} MB")
    by_role: dict[str, list[float]] = {}
    for r, peak in tree.peaks.values():
        by_role.setdefault(r, []).append(peak)
    for r, peaks in sorted(by_role.items()):
        print(f"  {r:34} {len(peaks):5} process(es), largest {max(peaks):7.1f} MB")
    print(f"largest total of the tree at one moment (RSS summed): {tree.total_mb:.1f} MB")
    return mb < LIMIT_MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--satellites", type=int, default=5)
    parser.add_argument("--kill-at", type=float, default=None, help="share of deliveries, 0-1")
    parser.add_argument("--reexecute", help=argparse.SUPPRESS)  # internal: the second run
    args = parser.parse_args()
    if args.reexecute:
        reexecute_from_failure(args.reexecute)
        return

    with workspace() as ws:
        body = cluster_yaml("bench/large", args.satellites, generate=args.items)
        env = ws.env()
        if args.kill_at is not None:
            body = body.replace("satellite/bench/noop", "satellite/bench/ledger")
            ledger = ws.home / "ledger"
            ledger.mkdir()
            env["EXOSPHERE_SATELLITE_MODULES"] = "bench_satellites,ledger_satellites"
            env["EXOSPHERE_BENCH_LEDGER"] = str(ledger)
        (ws.clusters / "large.yml").write_text(body)
        command = [sys.executable, "-m", "dagster", "job", "execute", *TARGET]
        print(f"{os.cpu_count()} CPUs, SQLite instance, default executor")
        if args.kill_at is None:
            tree = Tree()
            seconds, status, output = run(command, env, tree)
            if status != 0 or "RUN_SUCCESS" not in output:
                raise SystemExit("\n".join(output.splitlines()[-40:]))
            fast = seconds <= 300
            summarise(ws, args, seconds)
            small = report_memory(tree)
            tags = latest_runs(ws)[-1].tags
            done = tags.get("exosphere/succeeded") == str(args.items)
            verdict = "met" if done and small and fast else "NOT met"
            print(
                f"goal: all items succeed in <= 300 s, every process under {LIMIT_MB} MB: {verdict}"
            )
            return
        kill_and_reexecute(ws, args, command, env, ledger)


def summarise(ws: Workspace, args: argparse.Namespace, seconds: float) -> None:
    steps = step_seconds(ws)
    tags = latest_runs(ws)[-1].tags
    chunks = sum(1 for key in steps if key.startswith("noop_1["))
    print(
        f"{args.items} items x {args.satellites + 1} satellites (generator + {args.satellites} "
        f"no-op): {seconds:.1f} s, {len(steps)} steps, {chunks} chunks per satellite"
    )
    print(
        f"items: {tags.get('exosphere/items')}, succeeded: {tags.get('exosphere/succeeded')}, "
        f"failed: {tags.get('exosphere/failed')}"
    )
    slowest = sorted(steps.items(), key=lambda kv: kv[1], reverse=True)[:4]
    print("slowest steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in slowest))


def kill_and_reexecute(
    ws: Workspace, args: argparse.Namespace, command: list[str], env: dict, ledger: Path
) -> None:
    names = [f"noop-{i}" for i in range(1, args.satellites + 1)]
    # bytes of the whole ledger once every item went through every satellite
    full = sum(len(f"{names[0]} {n}\n") for n in range(args.items)) * len(names)

    def written() -> int:
        return sum(f.stat().st_size for f in ledger.iterdir())

    first_tree = Tree()
    seconds, _, _ = run(
        command, env, first_tree, kill_when=lambda: written() >= args.kill_at * full
    )
    share = written() / full
    (killed,) = latest_runs(ws)
    print(
        f"run 1: SIGKILL to the process group after {seconds:.1f} s, {share:.0%} of the "
        f"deliveries written; run status {killed.status.value}"
    )
    second_tree = Tree()
    again = [sys.executable, str(Path(__file__).resolve()), "--reexecute", killed.run_id]
    seconds2, status, output = run(again, env, second_tree)
    if status != 0 or "RUN_SUCCESS" not in output:
        raise SystemExit("\n".join(output.splitlines()[-40:]))
    print(f"run 2 (from failure): {seconds2:.1f} s, success")
    counts = __import__("ledger_satellites").read_ledger(str(ledger))
    wanted = {(name, n) for name in names for n in range(args.items)}
    lost = wanted - set(counts)
    twice = {k: c for k, c in counts.items() if c > 1}
    extra = set(counts) - wanted
    print(f"ledger: {len(counts)} of {len(wanted)} (satellite, item) delivered")
    print(f"  lost: {len(lost)}, delivered more than once: {len(twice)}, unknown: {len(extra)}")
    if twice:
        print("  e.g. " + ", ".join(f"{s} {n} x{c}" for (s, n), c in sorted(twice.items())[:5]))
    tags = latest_runs(ws)[-1].tags
    print(
        f"run 2's summary: items {tags.get('exosphere/items')}, succeeded "
        f"{tags.get('exosphere/succeeded')}, failed {tags.get('exosphere/failed')}"
    )
    print("memory, run 1:")
    small = report_memory(first_tree)
    print("memory, run 2:")
    small = report_memory(second_tree) and small
    exact = not lost and not twice and not extra
    verdict = "met" if exact and small else "NOT met"
    print(
        f"goal: every item once at every satellite over both runs, every process under 1 GB: {verdict}"
    )


if __name__ == "__main__":
    main()

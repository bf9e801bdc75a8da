"""Helpers for the benchmarks that run jobs the way a deployment does: ``dagster job execute`` in
a fresh process, on a SQLite ``DAGSTER_HOME``, with the job's default executor. No ``__main__``:
bench/run_all.py does not run this file.

* :func:`workspace` - a temporary instance home, a clusters folder and a plain Dagster job file;
* :func:`execute` - one ``dagster job execute`` run, timed, with the peak RSS of every process
  it started (sampled from /proc) and its step timings from the event log;
* :func:`alternate` - rounds that run each variant in turn, so the variants compared in a ratio
  ran side by side, under the same load.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from load_clusters import cluster_text

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

PLAIN_JOB = '''\
"""The baseline: the same two steps as a plain Dagster job."""
from dagster import job, op


@op
def first():
    return [{"n": i} for i in range(3)]


@op
def second(items):
    return items


@job
def plain_two_ops():
    second(first())
'''

NOOP_CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: {identifier}
  sla: {sla}
  trigger: api-call
  satellites:
{satellites}
"""


def cluster_yaml(identifier: str, satellites: int, generate: int | None = None, sla="24h") -> str:
    """A cluster of no-op satellites, after a generator of ``generate`` objects if given."""
    lines = []
    if generate is not None:
        lines.append(
            f"    - {{uses: satellite/bench/generate, identifier: generate, "
            f"config: {{count: {generate}}}}}"
        )
    lines += [
        f"    - {{uses: satellite/bench/noop, identifier: noop-{i}}}"
        for i in range(1, satellites + 1)
    ]
    return NOOP_CLUSTER.format(identifier=identifier, sla=sla, satellites="\n".join(lines))


@dataclass
class Workspace:
    home: Path
    clusters: Path
    plain_job: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "EXOSPHERE_CLUSTERS_DIR": str(self.clusters),
            "EXOSPHERE_SATELLITE_MODULES": "bench_satellites",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        }

    def run_config(self, name: str, config: dict) -> Path:
        path = self.home / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path


@contextmanager
def workspace() -> Iterator[Workspace]:
    with tempfile.TemporaryDirectory(prefix="exosphere-bench-") as tmp:
        root = Path(tmp)
        home, clusters = root / "home", root / "clusters"
        home.mkdir()
        clusters.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        plain = root / "plain_job.py"
        plain.write_text(PLAIN_JOB)
        yield Workspace(home, clusters, plain)


TINY_INPUTS = {"ops": {"exosphere__start": {"config": {"inputs": [{"n": i} for i in range(3)]}}}}


@contextmanager
def alone_and_crowded(clusters: int) -> Iterator[tuple[Workspace, Workspace]]:
    """Two workspaces with the 3-item, 2-satellite ``bench/tiny`` cluster: alone, and beside
    ``clusters - 1`` clusters of 20 satellites (bench/load_clusters.py's files)."""
    with workspace() as alone, workspace() as crowded:
        for ws in (alone, crowded):
            (ws.clusters / "tiny.yml").write_text(cluster_yaml("bench/tiny", 2))
        for n in range(clusters - 1):
            (crowded.clusters / f"cluster-{n:03d}.yml").write_text(cluster_text(n, 20))
        yield alone, crowded


@dataclass
class Result:
    label: str
    seconds: float
    ok: bool
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # process kind -> peak MB
    steps: dict[str, float] = field(default_factory=dict)  # step key -> seconds
    output: str = ""

    @property
    def peak_mb(self) -> float:
        return max(self.peak_rss_mb.values(), default=0.0)


def process_tree(root: int) -> dict[int, str]:
    """pid -> command line of every live descendant of ``root`` (and ``root``)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                commands[int(entry)] = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                frontier.append(child)
    return {pid: commands.get(pid, "") for pid in found}


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _kind(command: str, pid: int, root: int) -> str:
    if pid == root:
        return "run process (dagster job execute)"
    if "forkserver import main" in command:
        return "forkserver and the steps forked from it"
    if "spawn_main" in command:
        return "step processes (spawn)"
    return "other"


class RssSampler:
    """Peak resident memory per kind of process under ``root``, sampled every 0.1 s."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for pid, command in process_tree(self.root).items():
                kind = _kind(command, pid, self.root)
                self.peaks[kind] = max(self.peaks.get(kind, 0.0), rss_mb(pid))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {k: round(v, 1) for k, v in self.peaks.items()}


def execute(
    label: str,
    ws: Workspace,
    target: list[str],
    config: Path | None = None,
    sample_rss: bool = False,
    timeout: float = 1800,
    python: tuple[str, ...] = ("-m", "dagster"),
) -> Result:
    """``dagster job execute <target> [-c config]`` in a fresh process; wall time from start to
    exit, success from the exit status and the run's status. ``python``: how the interpreter
    starts Dagster's command line (``-c <code>`` for a variant that sets something up first)."""
    command = [sys.executable, *python, "job", "execute", *target]
    if config is not None:
        command += ["-c", str(config)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=REPO, env=ws.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    sampler = RssSampler(proc.pid) if sample_rss else None
    output, _ = proc.communicate(timeout=timeout)
    seconds = time.perf_counter() - started
    peaks = sampler.stop() if sampler else {}
    text = output.decode(errors="replace")
    ok = proc.returncode == 0 and ("RUN_SUCCESS" in text or "PIPELINE_SUCCESS" in text)
    return Result(label, seconds, ok, peaks, {}, text)


def step_seconds(ws: Workspace) -> dict[str, float]:
    """Step key -> seconds from STEP_WORKER_STARTING (or STEP_START) to STEP_SUCCESS, for the
    latest run of the instance at ``ws.home``."""
    os.environ["DAGSTER_HOME"] = str(ws.home)
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        began: dict[str, float] = {}
        took: dict[str, float] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or record.step_key is None:
                continue
            kind = event.event_type_value
            if kind in ("STEP_WORKER_STARTING", "STEP_START"):
                began.setdefault(record.step_key, record.timestamp)
            elif kind == "STEP_SUCCESS":
                took[record.step_key] = record.timestamp - began[record.step_key]
    return took


def alternate(rounds: int, variants: list[tuple[str, Callable[[], Result]]]) -> list[list[Result]]:
    """``rounds`` rounds, each running every variant once, in order."""
    table = []
    for number in range(1, rounds + 1):
        row = []
        for label, run in variants:
            result = run()
            if not result.ok:
                tail = "\n".join(result.output.splitlines()[-30:])
                raise SystemExit(f"{label} failed in round {number}:\n{tail}")
            print(f"  round {number}: {label:44} {result.seconds:7.1f} s", flush=True)
            row.append(result)
        table.append(row)
    return table


def median(values: list[float]) -> float:
    return statistics.median(values)


def by_variant(
    table: list[list[Result]], labels: list[str]
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each variant's seconds over the rounds, and its median ratio to the first variant of the
    same round (the runs compared in a ratio ran under the same load)."""
    seconds = {label: [row[i].seconds for row in table] for i, label in enumerate(labels)}
    ratio = {
        label: median([row[i].seconds / row[0].seconds for row in table])
        for i, label in enumerate(labels)
    }
    return seconds, ratio


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), then SIGKILL
    it if it has not ended within ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

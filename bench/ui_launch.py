"""UI launch latency: click to success for a 3-item cluster against a plain 2-op Dagster job, in one `dagster dev`.

One `dg dev` (what `exosphere dev` starts) serves a workspace of two code locations: exosphere's
(a clusters folder holding `bench/tiny`, 2 no-op satellites) and a plain file with a 2-op Dagster
job. The instance's `dagster.yaml` is the one `exosphere dev` writes (`--instance dagster` uses
Dagster's defaults instead: no run queue settings). Headless Chromium opens each job's Launchpad,
clicks "Launch Run" and waits for the final status on the run page; the variants alternate round
by round (plain first in odd rounds, the cluster first in even ones) so they share the load. One
warm-up launch of each is not counted.

Each run's phases come from Dagster's own event log over GraphQL: `queue` (created to
RUN_STARTING, which the queue daemon reports as it dequeues: its dequeue interval), `worker`
(RUN_STARTING to RUN_START: the launcher asks the code server to spawn a run worker, which
imports the code location and loads the job),
`to step` (RUN_START to the first step's start: the executor's set-up, e.g. the forkserver),
`steps` (first step start to the last step's end), `end` (to RUN_SUCCESS) and `UI` (run end to
the status shown); the last row is the median of the rounds' differences, phase by phase.
Goal (issue 24): cluster / plain <= 1.0 (median of the rounds' ratios).

    .venv/bin/python bench/ui_launch.py [--rounds 5] [--instance exosphere|dagster]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import yaml

from cli_runs import PLAIN_JOB as PLAIN_JOB_FILE
from cli_runs import REPO, Workspace, cluster_yaml, median, stop_group, workspace
from exosphere_dagster.entry.devserver import DEV_INSTANCE, free_port

CLUSTER_LOCATION, PLAIN_LOCATION = "exosphere", "plain"
CLUSTER_JOB, PLAIN_JOB = "bench__tiny", "plain_two_ops"
CLUSTER_CONFIG = (
    "ops:\n  exosphere__start:\n    config:\n      inputs:\n"
    "        - {n: 0}\n        - {n: 1}\n        - {n: 2}\n"
)
JOBS = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"
TIMELINE = """
query($id: ID!) {
  runOrError(runId: $id) { ... on Run { status creationTime startTime endTime } }
  logsForRun(runId: $id, limit: 5000) {
    ... on EventConnection { events { __typename ... on MessageEvent { timestamp stepKey } } }
  }
}"""
PHASES = ("queue", "worker", "to step", "steps", "end", "UI")
SHOT = REPO / "test-artifacts" / "ui_launch-failed.png"  # the page when a launch fails
FINAL = re.compile(r"^(Success|Failure|Canceled)$")


@dataclass(frozen=True)
class Launch:
    variant: str
    seconds: float  # click to the final status shown
    status: str
    phases: dict[str, float]


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    return response.json()["data"]


@contextlib.contextmanager
def dev_server(ws: Workspace, instance: str) -> Iterator[str]:
    """``dg dev`` on a workspace of both code locations; yields its URL once both jobs load."""
    root = ws.home.parent
    plain_file = root / "plain_definitions.py"  # a Definitions object: the UI's usual repository
    plain_file.write_text(
        f"{PLAIN_JOB_FILE}\nfrom dagster import Definitions\n\ndefs = Definitions(jobs=[plain_two_ops])\n"
    )
    config = DEV_INSTANCE if instance == "exosphere" else "telemetry:\n  enabled: false\n"
    (ws.home / "dagster.yaml").write_text(config)
    workspace_yaml = root / "workspace.yaml"
    workspace_yaml.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "exosphere_dagster.definitions",
                            "attribute": "defs",
                            "location_name": CLUSTER_LOCATION,
                        }
                    },
                    {
                        "python_file": {
                            "relative_path": str(plain_file),
                            "location_name": PLAIN_LOCATION,
                        }
                    },
                ]
            }
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "dagster-dev.log"
    command = [sys.executable, "-m", "dagster_dg_cli.cli", "dev", "-w", str(workspace_yaml)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],
            cwd=root,
            env=ws.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError, KeyError, TypeError, ValueError):
                repos = graphql(url, JOBS)["repositoriesOrError"]["nodes"]
                if {CLUSTER_JOB, PLAIN_JOB} <= {j["name"] for r in repos for j in r["jobs"]}:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"dagster dev did not serve both jobs:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc, timeout=40)


@contextlib.contextmanager
def browser() -> Iterator[object]:
    executable = os.environ.get("EXOSPHERE_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        raise SystemExit("Chromium not found (apt-get install chromium, or set EXOSPHERE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = chromium.new_page(viewport={"width": 1600, "height": 1200})
        page.set_default_timeout(60_000)
        # A fresh instance greets the first visit with a "Join the Dagster community" dialog.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda: page.get_by_role("button", name="Skip").click(),
        )
        try:
            yield page
        finally:
            chromium.close()


def launch(page, url: str, variant: str) -> Launch:
    """Open the job's Launchpad, click "Launch Run", wait for the run page's final status."""
    location, job, config = {
        "cluster": (CLUSTER_LOCATION, CLUSTER_JOB, CLUSTER_CONFIG),
        "plain": (PLAIN_LOCATION, PLAIN_JOB, ""),
    }[variant]
    page.goto(f"{url}/locations/{location}/jobs/{job}/playground")
    button = page.get_by_role("button", name="Launch Run")
    page.locator(".CodeMirror").first.wait_for()
    if config:
        page.evaluate("c => document.querySelector('.CodeMirror').CodeMirror.setValue(c)", config)
        page.get_by_text("No errors").first.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('button')].some("
        "b => b.textContent.includes('Launch Run') && !b.disabled)"
    )
    clicked = time.time()
    button.click()
    page.wait_for_url("**/runs/**")
    run_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    status = page.get_by_text(FINAL).first
    status.wait_for(state="visible", timeout=300_000)
    seen = time.time()
    return Launch(variant, seen - clicked, status.inner_text(), timeline(url, run_id, seen))


def timeline(url: str, run_id: str, seen: float) -> dict[str, float]:
    """The run's phases (seconds) from its event log; see the module docstring."""
    data = graphql(url, TIMELINE, {"id": run_id})
    run = data["runOrError"]
    first: dict[str, float] = {}
    last_step = 0.0
    for event in data["logsForRun"]["events"]:
        at = int(event["timestamp"]) / 1000
        kind = event["__typename"]
        first.setdefault(kind, at)
        if event.get("stepKey") and kind in (
            "ExecutionStepSuccessEvent",
            "ExecutionStepFailureEvent",
        ):
            last_step = max(last_step, at)
    step_start = min(
        first.get("StepWorkerStartingEvent", float("inf")),
        first.get("ExecutionStepStartEvent", float("inf")),
    )
    created, start, end = run["creationTime"], first["RunStartEvent"], run["endTime"]
    dequeued = first["RunStartingEvent"]  # the queue daemon's mark, just before it launches
    return {
        "queue": dequeued - created,
        "worker": start - dequeued,
        "to step": step_start - start,
        "steps": last_step - step_start,
        "end": end - last_step,
        "UI": seen - end,
    }


def table(launches: list[Launch], rounds: int) -> None:
    by = {v: [x for x in launches if x.variant == v] for v in ("plain", "cluster")}
    pairs = list(zip(by["plain"], by["cluster"], strict=True))  # (plain, cluster) of a round
    ratios = [c.seconds / p.seconds for p, c in pairs]
    print()
    header = "".join(f"{p:>9}" for p in PHASES)
    print(f"{'variant (median of ' + str(rounds) + ')':34} {'click->end':>10} {'best':>6}{header}")
    for variant, label in (
        ("plain", "plain 2-op Dagster job"),
        ("cluster", "cluster: 3 items x 2 satellites"),
    ):
        rows = by[variant]
        phases = "".join(f"{median([r.phases[p] for r in rows]):9.2f}" for p in PHASES)
        seconds = [r.seconds for r in rows]
        print(f"{label:34} {median(seconds):10.2f} {min(seconds):6.2f}{phases}")
    diffs = "".join(
        f"{median([c.phases[p] - q.phases[p] for q, c in pairs]):+9.2f}" for p in PHASES
    )
    spread = median([c.seconds - q.seconds for q, c in pairs])
    print(f"{'cluster - plain':34} {spread:+10.2f} {'':6}{diffs}")
    ratio = median(ratios)
    print()
    print(f"goal cluster / plain <= 1.0: {ratio:.2f} ({'met' if ratio <= 1.0 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--instance",
        choices=("exosphere", "dagster"),
        default="exosphere",
        help="dagster.yaml: the one exosphere dev writes, or Dagster's defaults",
    )
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; "
        f"SQLite instance, {args.instance} dagster.yaml; {args.rounds} rounds + 1 warm-up"
    )
    launches: list[Launch] = []
    with workspace() as ws, browser() as page:
        (ws.clusters / "tiny.yml").write_text(cluster_yaml("bench/tiny", 2))
        with dev_server(ws, args.instance) as url:
            for number in range(args.rounds + 1):
                order = ("plain", "cluster") if number % 2 else ("cluster", "plain")
                for variant in order:
                    try:
                        result = launch(page, url, variant)
                    except Exception:
                        SHOT.parent.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(SHOT))
                        raise
                    name = f"round {number}" if number else "warm-up"
                    phases = " ".join(f"{p} {result.phases[p]:.2f}" for p in PHASES)
                    print(
                        f"  {name:8} {variant:8} {result.seconds:6.2f} s  {result.status:8} "
                        f"({phases}) load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
                    if result.status != "Success":
                        raise SystemExit(f"{variant} run ended {result.status}")
                    if number:
                        launches.append(result)
    table(launches, args.rounds)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

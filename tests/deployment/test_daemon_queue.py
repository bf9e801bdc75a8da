"""A real ``dagster-daemon`` (QueuedRunCoordinator, run monitoring, sensors) on a fresh Postgres
database, loading the product's code location over tiny cluster files.

* 30 runs submitted in random order across tiers start in priority order, within the tier
  limits; a 24h run whose deadline is close is boosted by the deadline sensor and overtakes.
  Every run holds its slot until the test releases it (a gate file named after its run id), and
  runs are released one at a time: after each release the daemon must dequeue exactly what the
  rules say (priority, FIFO among equals, tier limits, free slots), so the test checks every
  decision and waits only on run statuses, never on how fast the machine is.
* A run past a tiny SLA is failed by run monitoring and its in-flight items go through the
  cluster's failure satellites (and the breach reaches its log satellite).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from daemon_harness import instance_config, running_daemon, wait_for
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._cli.job import _create_run
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from clusters import cluster, failure_branch, satellite_entry, write_cluster
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.tags import (
    BREACH_OF_TAG,
    DEADLINE_TAG,
    PRIORITY_TAG,
    SLA_TAG,
    TRIGGER_TIME_TAG,
)
from exosphere_dagster.runtime.checkpoint import STATE_PREFIX, checkpoint_store_for
from exosphere_dagster.runtime.checkpoint_postgres import PostgresCheckpointStore
from exosphere_dagster.translate.scheduling.deadlines import URGENT_BASE
from satellite_env import satellite_env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

HERE = Path(__file__).resolve().parent
LIMITS = {"6h": 3, "12h": 2, "24h": 1}  # 6 > MAX_RUNS: tiers compete for the slots
MAX_RUNS = 4
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
JOBS = {"6h": "deploytest__six", "12h": "deploytest__twelve", "24h": "deploytest__day"}
SLOW_JOB = "deploytest__slow"
SLOW_SECONDS = 600  # the slow satellite's sleep: a run that ends sooner was stopped
GATE = "gate"  # SLA tag of the runs that hold every slot first: no tier limit applies


def tier_cluster(name: str, sla: str, gates: Path) -> dict:
    """One satellite that holds its run until the gate file named after the run id appears."""
    wait = {"path": gates / "${{ run.id }}", "timeout": 1800}
    work = satellite_entry("satellite/deploytest/wait-for-file", "work", wait)
    return cluster(f"deploytest/{name}", [work], sla=sla)


def slow_cluster(alerts: Path, logs: Path) -> dict:
    """Three items that each sleep SLOW_SECONDS, past the job's 4 s max runtime; the failure
    branch records what run monitoring stopped, and every log record goes to ``logs``."""
    alert = {
        "path": alerts,
        "fields": {
            "error": "${{ failure.error }}",
            "satellite": "${{ failure.satellite }}",
            "name": "${{ satellites.fan.output.name }}",
        },
    }
    return cluster(
        "deploytest/slow",
        [
            satellite_entry("satellite/deploytest/emit", "fan", {"count": 3}),
            satellite_entry("satellite/deploytest/sleep", "wait", {"seconds": SLOW_SECONDS}),
        ],
        retries=0,
        tags={"dagster/max_runtime": "4"},
        failure=failure_branch(
            "wait", [satellite_entry("satellite/deploytest/record", "alert", alert)]
        ),
        logs=[satellite_entry("satellite/deploytest/record", "log-sink", {"path": logs})],
    )


@pytest.fixture(scope="module")
def database(postgres_url) -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards."""
    import psycopg2

    name = f"exo_daemon_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(postgres_url.replace("+psycopg2", ""), connect_timeout=3)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, database) -> Iterator[dict[str, Any]]:
    """An instance from deployments/dagster.local.yaml (Postgres, small limits), a clusters
    folder, the daemon running, and a workspace to submit runs through, as the UI does."""
    base = tmp_path_factory.mktemp("daemon")
    clusters, gates = base / "clusters", base / "gates"
    clusters.mkdir()
    gates.mkdir()
    config = instance_config()
    config["storage"] = {"postgres": {"postgres_url": database}}
    queue = config["run_coordinator"]["config"]
    queue.update(max_concurrent_runs=MAX_RUNS, dequeue_interval_seconds=1)
    queue["tag_concurrency_limits"] = [
        {"key": SLA_TAG, "value": tier, "limit": limit} for tier, limit in LIMITS.items()
    ]
    config["run_monitoring"]["poll_interval_seconds"] = 1
    for name, sla in (("six", "6h"), ("twelve", "12h"), ("day", "24h")):
        write_cluster(clusters, f"{name}.yml", tier_cluster(name, sla, gates))
    alerts, logs = base / "alerts.jsonl", base / "logs.jsonl"
    write_cluster(clusters, "slow.yml", slow_cluster(alerts, logs))
    env = {
        **satellite_env(HERE, "deploy_satellites"),
        "EXOSPHERE_CLUSTERS_DIR": str(clusters),
        "EXOSPHERE_DEADLINE_INTERVAL": "1",
        "EXOSPHERE_SLA_SENSOR_INTERVAL": "1",
    }
    with (
        running_daemon(base, config, env) as (home, log),
        DagsterInstance.from_config(str(home)) as instance,
        WorkspaceProcessContext(
            instance, WorkspaceFileTarget(paths=[str(base / "workspace.yaml")])
        ) as workspace_context,
    ):
        yield {
            "instance": instance,
            "workspace": workspace_context,
            "gates": gates,
            "alerts": alerts,
            "logs": logs,
            "log": log,
        }


def submit(deployment: dict[str, Any], job_name: str, tags: dict[str, str] | None = None) -> str:
    """Create and submit a run the way the launchpad does: job tags plus the given ones."""
    request = deployment["workspace"].create_request_context()
    location = request.get_code_location(request.code_location_names[0])
    repo = location.get_repository("__repository__")
    run = _create_run(
        instance=deployment["instance"],
        code_location=location,
        remote_repo=repo,
        remote_job=repo.get_full_job(job_name),
        run_config=IN_PROCESS,
        tags=tags or {},
        op_selection=None,
        run_id=None,
    )
    deployment["instance"].submit_run(run.run_id, request)
    return run.run_id


def expected_starts(
    queued: list[tuple[str, str]], running: list[tuple[str, str]], priority: dict[str, int]
) -> list[str]:
    """What the QueuedRunCoordinator must dequeue now: queued runs (in creation order) by
    priority, FIFO among equals, skipping those whose tier is at its limit, up to the free
    slots."""
    free = MAX_RUNS - len(running)
    busy = Counter(tier for _, tier in running)
    picked: list[str] = []
    for run_id, tier in sorted(queued, key=lambda run: -priority[run[0]]):  # stable: FIFO
        if len(picked) >= free:
            break
        if busy[tier] < LIMITS.get(tier, MAX_RUNS):
            busy[tier] += 1
            picked.append(run_id)
    return picked


def test_runs_start_in_priority_order_within_tier_limits_and_deadlines_overtake(deployment):
    instance, log, gate_dir = deployment["instance"], deployment["log"], deployment["gates"]
    started = time.monotonic()
    gates = [submit(deployment, JOBS["6h"], {SLA_TAG: GATE}) for _ in range(MAX_RUNS)]
    wait_for(
        "the gate runs to hold every run slot",
        lambda: all(instance.get_run_by_id(r).status == DagsterRunStatus.STARTED for r in gates),
        log,
    )
    now = datetime.now(UTC)
    wanted = [*["6h"] * 12, *["12h"] * 10, *["24h"] * 7, "urgent"]
    random.Random(6).shuffle(wanted)
    runs: list[tuple[str, str]] = []  # (run id, tier), in creation order
    for tier in wanted:
        if tier == "urgent":  # triggered 23h55m ago: 5 minutes left of its 24h SLA
            when = now - timedelta(hours=23, minutes=55)
            tags = {
                TRIGGER_TIME_TAG: when.isoformat(),
                DEADLINE_TAG: (now + timedelta(minutes=5)).isoformat(),
            }
            urgent = submit(deployment, JOBS["24h"], tags)
            runs.append((urgent, "24h"))
        else:  # launched by hand: no deadline until the sensor stamps one
            runs.append((submit(deployment, JOBS[tier]), tier))
    submitted = datetime.now(UTC)
    ids = [r for r, _ in runs]

    def stamped_and_boosted() -> bool:
        tags = {r: instance.get_run_by_id(r).tags for r in ids}
        return int(tags[urgent][PRIORITY_TAG]) >= URGENT_BASE and all(
            DEADLINE_TAG in t for t in tags.values()
        )

    wait_for(
        "the deadline sensor to stamp deadlines and boost the urgent run", stamped_and_boosted, log
    )
    statuses = {instance.get_run_by_id(r).status for r in ids}
    assert statuses == {DagsterRunStatus.QUEUED}, "runs started while every slot was held"

    # Release the oldest running run, wait for it to end, and for the daemon to dequeue what
    # the rules say; nothing else can change meanwhile, as every other run waits for its gate.
    running: list[tuple[str, str]] = [(g, GATE) for g in gates]
    queued = list(runs)
    order: list[str] = []
    peak: Counter[str] = Counter()
    while running:
        released, _ = running.pop(0)
        (gate_dir / released).write_text("open")
        wait_for(
            f"released run {released} to end",
            lambda released=released: instance.get_run_by_id(released).is_finished,
            log,
        )
        current = {run.run_id: run for run in instance.get_runs(RunsFilter(run_ids=ids))}
        priority = {r: int(current[r].tags[PRIORITY_TAG]) for r, _ in queued}
        expected = expected_starts(queued, running, priority)
        if expected:

            def dequeued(expected: list[str] = expected) -> list[str] | None:
                fresh = instance.get_runs(RunsFilter(run_ids=[r for r, _ in queued]))
                left = [run.run_id for run in fresh if run.status != DagsterRunStatus.QUEUED]
                return left if len(left) >= len(expected) else None

            left = wait_for(f"the daemon to dequeue {len(expected)} run(s)", dequeued, log)
            tier = dict(runs)
            assert sorted(left) == sorted(expected), (
                f"after {len(order)} starts, dequeued {[(r, tier[r]) for r in left]}, expected "
                f"{[(r, tier[r], priority[r]) for r in expected]}; running "
                f"{[t for _, t in running]}"
            )
        for run_id in expected:
            running.append(next(run for run in queued if run[0] == run_id))
            queued.remove(running[-1])
        order.extend(expected)
        for tier, count in Counter(t for _, t in running).items():
            peak[tier] = max(peak[tier], count)
    elapsed = time.monotonic() - started

    assert not queued and len(order) == len(runs)
    assert order[0] == urgent, "the run with a close deadline was not the first to start"
    assert {t: peak[t] for t in LIMITS} == LIMITS, peak  # every tier limit was reached
    final = {run.run_id: run for run in instance.get_runs(RunsFilter(run_ids=ids + gates))}
    assert {run.status for run in final.values()} == {DagsterRunStatus.SUCCESS}
    for run_id, tier in runs:  # stamped deadline = creation time + SLA, trigger time = creation
        tags = final[run_id].tags
        trigger = datetime.fromisoformat(tags[TRIGGER_TIME_TAG])
        assert datetime.fromisoformat(tags[DEADLINE_TAG]) - trigger == timedelta(
            hours=int(tier[:-1])
        ), (run_id, tags)
        if run_id != urgent:
            assert now - timedelta(seconds=1) <= trigger <= submitted + timedelta(seconds=1)
    tier_of = dict(runs)
    print(
        f"\n30 queued runs + {MAX_RUNS} gate runs, released one at a time: {elapsed:.1f}s; "
        "start order: " + " ".join("U" if r == urgent else tier_of[r] for r in order)
    )


def test_run_past_its_sla_is_failed_and_alerts_through_failure_and_log_satellites(deployment):
    instance, log = deployment["instance"], deployment["log"]
    started = time.monotonic()
    slow = submit(deployment, SLOW_JOB)
    wait_for(
        "run monitoring to fail the slow run", lambda: instance.get_run_by_id(slow).is_finished, log
    )
    record = instance.get_run_record_by_id(slow)
    assert record.dagster_run.status == DagsterRunStatus.FAILURE
    assert record.end_time - record.start_time < SLOW_SECONDS  # stopped, not finished
    messages = [e.message or "" for e in instance.all_logs(slow)]
    assert any("maximum runtime of 4 seconds" in m for m in messages), messages[-5:]

    def alert_run():
        found = instance.get_runs(RunsFilter(tags={BREACH_OF_TAG: slow}))
        return found[0] if found and found[0].is_finished else None

    alert = wait_for("the SLA-breach alert run", alert_run, log)
    assert alert.status == DagsterRunStatus.SUCCESS, [
        e.message for e in instance.all_logs(alert.run_id)
    ][-10:]
    lines = [json.loads(line) for line in deployment["alerts"].read_text().splitlines()]
    assert sorted(line["fields"]["name"] for line in lines) == ["item-0", "item-1", "item-2"]
    # the three items came from the run's checkpoints, which the deployment keeps in Postgres
    assert isinstance(checkpoint_store_for(instance, Deployment.load()), PostgresCheckpointStore)
    with sa.create_engine(instance.run_storage.postgres_url).connect() as conn:
        kept = conn.execute(
            sa.text(
                "SELECT count(*) FROM exosphere_checkpoints WHERE root_run_id = :r "
                "AND item_id NOT LIKE :state"  # step state (where the fan-out placed items)
            ),
            {"r": slow, "state": STATE_PREFIX + "%"},
        ).scalar()
    assert kept == 1  # the seed item, finished at the fan-out; its 3 children were in flight
    for line in lines:
        assert line["fields"]["satellite"] == "wait"
        assert line["fields"]["error"].startswith(f"SLA breach: run {slow}")
        assert "6h SLA (max runtime 4s" in line["fields"]["error"]
    records = [
        r
        for line in deployment["logs"].read_text().splitlines()
        for r in json.loads(line)["input"]["records"]
    ]
    breach = [r for r in records if r["level"] == "error" and "SLA breach" in r["message"]]
    assert breach and breach[0]["run_id"] == slow and breach[0]["cluster"] == "deploytest/slow"
    print(
        f"\nSLA breach: run failed after {record.end_time - record.start_time:.1f}s, "
        f"alerted {time.monotonic() - started:.1f}s after submission"
    )

"""A real ``dagster-daemon`` (QueuedRunCoordinator, run monitoring, sensors) on a fresh Postgres
database, loading the product's code location over tiny cluster files.

* 30 runs submitted in random order across tiers start in priority order, within the tier
  limits; a 24h run whose deadline is close is boosted by the deadline sensor and overtakes.
* A run past a tiny SLA is failed by run monitoring and its in-flight items go through the
  cluster's failure satellites (and the breach reaches its log satellite).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._cli.job import _create_run
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from exosphere_dagster.deadlines import URGENT_BASE
from exosphere_dagster.runtime.checkpoint import checkpoint_store_for
from exosphere_dagster.runtime.checkpoint_postgres import PostgresCheckpointStore
from exosphere_dagster.tags import (
    BREACH_OF_TAG,
    DEADLINE_TAG,
    PRIORITY_TAG,
    SLA_TAG,
    TRIGGER_TIME_TAG,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
LIMITS = {"6h": 3, "12h": 2, "24h": 1}  # 6 > MAX_RUNS: tiers compete for the slots
MAX_RUNS = 4
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
JOBS = {"6h": "deploytest__six", "12h": "deploytest__twelve", "24h": "deploytest__day"}
SLOW_JOB = "deploytest__slow"

TIER_CLUSTER = """version: 0.0.1b
cluster:
  identifier: deploytest/{name}
  sla: {sla}
  trigger: api-call
  satellites:
    - uses: {uses}
      identifier: work
      config: {config}
"""
SLOW_CLUSTER = """version: 0.0.1b
cluster:
  identifier: deploytest/slow
  sla: 6h
  trigger: api-call
  retries: 0
  tags:
    dagster/max_runtime: "4"
  satellites:
    - uses: satellite/deploytest/emit
      identifier: fan
      config: {{count: 3}}
    - uses: satellite/deploytest/sleep
      identifier: wait
      config: {{seconds: 45}}
  failure:
    from: wait
    satellites:
      - uses: satellite/deploytest/record
        identifier: alert
        config:
          path: {alerts}
          fields:
            error: ${{{{ failure.error }}}}
            satellite: ${{{{ failure.satellite }}}}
            name: ${{{{ satellites.fan.output.name }}}}
  logs:
    satellites:
      - uses: satellite/deploytest/record
        identifier: log-sink
        config: {{path: {logs}}}
"""


def _wait(what: str, check: Callable[[], Any], timeout: float, log: Path) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    tail = log.read_text()[-4000:] if log.exists() else ""
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}\n--- daemon log ---\n{tail}"
    )


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"exo_daemon_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(f"{PG.replace('+psycopg2', '')}/test", connect_timeout=3)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL is not reachable at {PG}/test: {exc}")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG}/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, database) -> Iterator[dict[str, Any]]:
    """DAGSTER_HOME from deployments/dagster.local.yaml (Postgres, small limits), a clusters
    folder, the daemon running, and a workspace to submit runs through, as the UI does."""
    base = tmp_path_factory.mktemp("daemon")
    home, clusters = base / "home", base / "clusters"
    home.mkdir()
    clusters.mkdir()
    config = yaml.safe_load((ROOT / "deployments" / "dagster.local.yaml").read_text())
    config["storage"] = {"postgres": {"postgres_url": database}}
    queue = config["run_coordinator"]["config"]
    queue.update(max_concurrent_runs=MAX_RUNS, dequeue_interval_seconds=1)
    queue["tag_concurrency_limits"] = [
        {"key": SLA_TAG, "value": tier, "limit": limit} for tier, limit in LIMITS.items()
    ]
    config["run_monitoring"]["poll_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    for name, sla in (("six", "6h"), ("twelve", "12h"), ("day", "24h")):
        text = TIER_CLUSTER.format(
            name=name, sla=sla, uses="satellite/deploytest/noop", config="{}"
        )
        (clusters / f"{name}.yml").write_text(text)
    gate = base / "gate-open"
    gate_config = json.dumps({"path": str(gate), "timeout": 150})
    (clusters / "gate.yml").write_text(
        TIER_CLUSTER.format(
            name="gate", sla="6h", uses="satellite/deploytest/wait-for-file", config=gate_config
        )
    )
    alerts, logs = base / "alerts.jsonl", base / "logs.jsonl"
    (clusters / "slow.yml").write_text(SLOW_CLUSTER.format(alerts=alerts, logs=logs))
    workspace = base / "workspace.yaml"
    workspace.write_text((ROOT / "deployments" / "workspace.yaml").read_text())
    env = {
        "DAGSTER_HOME": str(home),
        "EXOSPHERE_CLUSTERS_DIR": str(clusters),
        "EXOSPHERE_SATELLITE_MODULES": "deploy_satellites",
        "EXOSPHERE_DEADLINE_INTERVAL": "1",
        "EXOSPHERE_SLA_SENSOR_INTERVAL": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    log = base / "daemon.log"
    with mock.patch.dict(os.environ, env), log.open("w") as out:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace)],
            cwd=base,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            with (
                DagsterInstance.from_config(str(home)) as instance,
                WorkspaceProcessContext(
                    instance, WorkspaceFileTarget(paths=[str(workspace)])
                ) as workspace_context,
            ):
                yield {
                    "instance": instance,
                    "workspace": workspace_context,
                    "gate": gate,
                    "alerts": alerts,
                    "logs": logs,
                    "log": log,
                }
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(20)
            # its code server and run processes share its session: leave none of them behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)


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


def _events(instance, run_id: str) -> dict[str, tuple[int, float]]:
    """RUN_STARTING (dequeued) and the end of the run: kind -> (storage id, timestamp)."""
    types = {
        DagsterEventType.RUN_STARTING: "start",
        DagsterEventType.RUN_SUCCESS: "end",
        DagsterEventType.RUN_FAILURE: "end",
    }
    found = {}
    for record in instance.get_records_for_run(run_id, of_type=set(types)).records:
        kind = types[record.event_log_entry.dagster_event.event_type]
        found.setdefault(kind, (record.storage_id, record.event_log_entry.timestamp))
    return found


def test_runs_start_in_priority_order_within_tier_limits_and_deadlines_overtake(deployment):
    instance, log = deployment["instance"], deployment["log"]
    started = time.monotonic()
    gates = [submit(deployment, "deploytest__gate", {SLA_TAG: "gate"}) for _ in range(MAX_RUNS)]
    _wait(
        "the gate runs to hold every run slot",
        lambda: all(instance.get_run_by_id(r).status == DagsterRunStatus.STARTED for r in gates),
        90,
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

    def stamped_and_boosted() -> bool:
        tags = {r: instance.get_run_by_id(r).tags for r, _ in runs}
        return int(tags[urgent][PRIORITY_TAG]) >= URGENT_BASE and all(
            DEADLINE_TAG in t for t in tags.values()
        )

    _wait(
        "the deadline sensor to stamp deadlines and boost the urgent run",
        stamped_and_boosted,
        60,
        log,
    )
    statuses = {instance.get_run_by_id(r).status for r, _ in runs}
    assert statuses == {DagsterRunStatus.QUEUED}, "runs started while every slot was held"
    deployment["gate"].write_text("open")
    ids = [r for r, _ in runs]
    _wait(
        "all 30 runs to finish",
        lambda: all(instance.get_run_by_id(r).is_finished for r in ids + gates),
        150,
        log,
    )
    elapsed = time.monotonic() - started
    final = {r: instance.get_run_by_id(r) for r in ids}
    assert {run.status for run in final.values()} == {DagsterRunStatus.SUCCESS}

    for run_id, tier in runs:  # stamped deadline = creation time + SLA, trigger time = creation
        tags = final[run_id].tags
        span = datetime.fromisoformat(tags[DEADLINE_TAG]) - datetime.fromisoformat(
            tags[TRIGGER_TIME_TAG]
        )
        assert span == timedelta(hours=int(tier[:-1])), (run_id, tags)
        if run_id != urgent:
            assert abs(datetime.fromisoformat(tags[TRIGGER_TIME_TAG]) - now) < timedelta(minutes=2)

    events = {r: _events(instance, r) for r in ids + gates}
    tier_of = {r: t for r, t in runs} | {g: "gate" for g in gates}
    order = sorted(ids, key=lambda r: events[r]["start"][0])
    # The close deadline overtakes: the urgent 24h run is in the first batch the daemon
    # dequeues once a slot frees (launches of one batch run in parallel threads).
    first_start = min(events[r]["start"][1] for r in ids)
    assert events[urgent]["start"][1] - first_start < 1.0, order.index(urgent)

    # Limits: replay every start/end in event-log order; no tier and no slot count exceeded.
    timeline = sorted(
        [(ev["start"][0], 1, r) for r, ev in events.items()]
        + [(ev["end"][0], -1, r) for r, ev in events.items()]
    )
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    for _sid, delta, run_id in timeline:
        running[tier_of[run_id]] = running.get(tier_of[run_id], 0) + delta
        peak[tier_of[run_id]] = max(peak.get(tier_of[run_id], 0), running[tier_of[run_id]])
        assert sum(running.values()) <= MAX_RUNS
        for tier, limit in LIMITS.items():
            assert running.get(tier, 0) <= limit, f"{tier} ran {running[tier]} at once"
    assert {t: peak[t] for t in LIMITS} == LIMITS, peak  # every limit was reached, none passed

    # Priority: whenever a run started, every queued run that should have gone first (higher
    # priority, or equal and created earlier) was held back by its tier's limit. A batch is
    # launched by parallel threads, so runs starting within BATCH seconds were decided together;
    # the daemon counts runs that ended during its loop as running, hence SLACK.
    rank = {r: (int(final[r].tags[PRIORITY_TAG]), -i) for i, (r, _) in enumerate(runs)}
    batch, slack = 1.0, 3.0
    violations = []
    for position, run_id in enumerate(order):
        start_sid, start_ts = events[run_id]["start"]
        for other in order[position + 1 :]:
            if rank[other] <= rank[run_id] or events[other]["start"][1] - start_ts < batch:
                continue
            tier = tier_of[other]
            busy = sum(
                1
                for r in ids
                if tier_of[r] == tier
                and events[r]["start"][1] < start_ts + batch
                and events[r]["end"][1] > start_ts - slack
            )
            if busy < LIMITS[tier]:
                violations.append((order.index(run_id), tier_of[run_id], order.index(other), tier))
    assert not violations, violations
    print(
        f"\n30 queued runs + {MAX_RUNS} gate runs: {elapsed:.1f}s; start order: "
        + " ".join("U" if r == urgent else tier_of[r] for r in order)
    )


def test_run_past_its_sla_is_failed_and_alerts_through_failure_and_log_satellites(deployment):
    instance, log = deployment["instance"], deployment["log"]
    started = time.monotonic()
    slow = submit(deployment, SLOW_JOB)
    _wait(
        "run monitoring to fail the slow run",
        lambda: instance.get_run_by_id(slow).is_finished,
        90,
        log,
    )
    record = instance.get_run_record_by_id(slow)
    assert record.dagster_run.status == DagsterRunStatus.FAILURE
    assert record.end_time - record.start_time < 20  # failed at ~4s, far before the 45s sleep
    messages = [e.message or "" for e in instance.all_logs(slow)]
    assert any("maximum runtime of 4 seconds" in m for m in messages), messages[-5:]

    def alert_run():
        found = instance.get_runs(RunsFilter(tags={BREACH_OF_TAG: slow}))
        return found[0] if found and found[0].is_finished else None

    alert = _wait("the SLA-breach alert run", alert_run, 120, log)
    assert alert.status == DagsterRunStatus.SUCCESS, [
        e.message for e in instance.all_logs(alert.run_id)
    ][-10:]
    lines = [json.loads(line) for line in deployment["alerts"].read_text().splitlines()]
    assert sorted(line["fields"]["name"] for line in lines) == ["item-0", "item-1", "item-2"]
    # the three items came from the run's checkpoints, which the deployment keeps in Postgres
    assert isinstance(checkpoint_store_for(instance), PostgresCheckpointStore)
    with sa.create_engine(instance.run_storage.postgres_url).connect() as conn:
        kept = conn.execute(
            sa.text("SELECT count(*) FROM exosphere_checkpoints WHERE root_run_id = :r"),
            {"r": slow},
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

"""Launching on the local instance: re-runs keep their parent's SLA window and run config, and
runs started together on a fresh SQLite ``DAGSTER_HOME`` all land in a readable instance."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from byo_satellites import read_calls
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from clusters import cluster, record, write_cluster
from exosphere_dagster.entry.launch import rerun, run_cluster_file, sla_window
from exosphere_dagster.resolve.tags import DEADLINE_TAG, TRIGGER_TIME_TAG

pytestmark = pytest.mark.integration
WINDOW = "${{ run.trigger_time }} ${{ run.deadline }}"


def window_cluster(tmp_path, log_dir, cause):
    """``stamp`` logs the run's SLA window, and fails while ``cause`` exists."""
    stamp = record("stamp", WINDOW, log_dir, fail_for=[WINDOW], fail_while=cause)
    return write_cluster(tmp_path, "window.yml", cluster("test/rerun-window", [stamp], retries=0))


def test_rerun_keeps_the_parents_sla_window_and_inputs(tmp_path, sqlite_instance):
    """Every item fails in the parent; the re-run (later) sees the parent's trigger time and
    deadline, in its tags and in the templates, and gets the parent's three inputs again."""
    log_dir, cause = tmp_path / "calls", tmp_path / "cause"
    log_dir.mkdir()
    cause.write_text("broken")
    path = window_cluster(tmp_path, log_dir, cause)
    inputs = [{"n": 0}, {"n": 1}, {"n": 2}]
    first = run_cluster_file(path, inputs, instance=sqlite_instance)
    assert not first.success and read_calls(log_dir) == []
    parent = sqlite_instance.get_run_by_id(first.run_id)
    window = (parent.tags[TRIGGER_TIME_TAG], parent.tags[DEADLINE_TAG])

    cause.unlink()
    again = rerun(first.run_id, instance=sqlite_instance)
    assert again.success
    child = sqlite_instance.get_run_by_id(again.run_id)
    assert (child.tags[TRIGGER_TIME_TAG], child.tags[DEADLINE_TAG]) == window
    assert Counter(read_calls(log_dir)) == Counter({" ".join(window): 3})
    assert child.tags["exosphere/items"] == "3"  # the parent's inputs, not a default one
    assert child.run_config == parent.run_config


def test_a_run_without_window_tags_gets_creation_time_plus_sla(tmp_path, sqlite_instance):
    """What the deadlines sensor would have stamped on a run launched without the tags."""
    log_dir = tmp_path / "calls"
    log_dir.mkdir()
    path = window_cluster(tmp_path, log_dir, tmp_path / "no-cause")
    result = run_cluster_file(path, instance=sqlite_instance)
    run = sqlite_instance.get_run_by_id(result.run_id)
    bare = run.with_tags(
        {k: v for k, v in run.tags.items() if k not in (TRIGGER_TIME_TAG, DEADLINE_TAG)}
    )
    created = sqlite_instance.get_run_record_by_id(run.run_id).create_timestamp
    tags = sla_window(sqlite_instance, bare)
    start, deadline = (datetime.fromisoformat(tags[k]) for k in (TRIGGER_TIME_TAG, DEADLINE_TAG))
    assert abs((start - created).total_seconds()) < 1e-3
    assert deadline - start == timedelta(hours=6)


RACE = """\
import os, sys, time
from pathlib import Path
from exosphere_dagster.entry.launch import local_instance
barrier = Path(sys.argv[1])
(barrier / f"ready-{os.getpid()}").touch()
while not (barrier / "go").exists():
    time.sleep(0.001)
instance = local_instance()
print(len(instance.get_runs()), flush=True)
"""


def test_processes_opening_a_fresh_home_at_the_same_instant_all_succeed(tmp_path):
    """Eight processes, imports done, open the same fresh SQLite instance at one instant (the
    moment Dagster creates and stamps its databases). Without the lock most of them fail here
    ("table ... already exists", an alembic stamping error): 4 to 6 of 8 in trials."""
    home, barrier = tmp_path / "home", tmp_path / "barrier"
    home.mkdir()
    barrier.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    script = tmp_path / "race.py"
    script.write_text(RACE)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(barrier)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    try:
        deadline = time.monotonic() + 240  # a ceiling for a hung test, not a budget
        while len(list(barrier.glob("ready-*"))) < 8:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.05)
        (barrier / "go").touch()
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * 8, [err[-600:] for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["0"] * 8


@pytest.mark.slow
def test_eight_exosphere_runs_started_together_on_a_fresh_home(tmp_path):
    """``exosphere run`` eight times at once on a DAGSTER_HOME that does not exist yet; then
    the instance opens and holds all eight runs, successful, with their event logs."""
    home = tmp_path / "fresh_home"
    log_dir = tmp_path / "calls"
    log_dir.mkdir()
    together = cluster("test/together", [record("record", "${{ run.id }}", log_dir)], sla="24h")
    path = write_cluster(tmp_path, "together.yml", together)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "exosphere_dagster.entry.cli", "run", str(path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=280)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[-800:] for o in outputs]
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 8
        assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
        for run in runs:
            events = [
                e.dagster_event.event_type for e in instance.all_logs(run.run_id) if e.dagster_event
            ]
            assert DagsterEventType.RUN_SUCCESS in events

    assert sorted(read_calls(log_dir)) == sorted(r.run_id for r in runs)

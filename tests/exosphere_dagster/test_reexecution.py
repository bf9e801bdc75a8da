"""A run killed with SIGKILL mid-chunk, re-executed from failure, processes no item twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from byo_satellites import read_calls
from dagster import DagsterRunStatus

from clusters import cluster, cluster_from, fan_out, record, write_cluster
from exosphere_dagster.entry.launch import rerun

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_sigkill_then_reexecute_from_failure_processes_each_item_once(tmp_path, sqlite_instance):
    log_dir = tmp_path / "calls"
    log_dir.mkdir()
    killed = cluster(
        "test/killed",
        [
            fan_out("items", count=40, prefix="item-"),
            record("record", "$${{ satellites.items.output.label }}", log_dir, block_on="item-24"),
        ],
        retries=0,
    )
    path = write_cluster(tmp_path, "killed.yml", killed)
    env = {**os.environ, "DAGSTER_HOME": sqlite_instance.root_directory}
    proc = subprocess.Popen(
        [sys.executable, "-m", "exosphere_dagster.entry.cli", "run", str(path)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # chunks of 10: items 0-19 finish, then item-24 blocks while 20-23 and 25-29 finish
        wait_for(lambda: (log_dir / "blocked").exists() and len(read_calls(log_dir)) == 29)
        time.sleep(0.5)  # let the last finished item reach its checkpoint
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = read_calls(log_dir)
    assert len(before) == 29 and "item-24" not in before

    (run,) = sqlite_instance.get_runs()
    assert run.status == DagsterRunStatus.STARTED  # the process died without a word
    sqlite_instance.report_run_failed(run)  # what run monitoring does in a deployment

    # Dagster's own "from failure" (the UI button) re-runs the interrupted chunk step; the chunk
    # step that never started is not re-created by Dagster, so the summary runs it inline.
    result = rerun(run.run_id, instance=sqlite_instance, from_failure=True)
    assert result.success
    calls = Counter(read_calls(log_dir))
    assert calls == Counter(f"item-{i}" for i in range(40))  # all 40, none twice
    tags = sqlite_instance.get_run_by_id(result.run_id).tags
    assert (tags["exosphere/items"], tags["exosphere/succeeded"]) == ("40", "40")
    logs = [r.user_message for r in sqlite_instance.all_logs(result.run_id)]
    assert any("chunk c00003 of record never ran in its own step" in m for m in logs)


@pytest.mark.parametrize("multiprocess", [False, True], ids=["in-process", "multiprocess"])
def test_reexecute_from_failure_retries_only_the_failed_item(
    tmp_path, sqlite_instance, multiprocess
):
    """What the UI's "Re-execute > From failure" does (ReexecutionOptions.from_failure): in the
    first run the good items go on to ``after`` and the summary counts the run; re-executed,
    the red chunk step runs again, its good items come from the checkpoint, the failed one is
    called once more, and ``after`` runs for it alone (the others are in its checkpoint)."""
    from exosphere_dagster.entry.launch import run_cluster_file

    log_dir, cause = tmp_path / "calls", tmp_path / "cause"
    log_dir.mkdir()
    cause.write_text("broken")
    flaky = cluster_from(
        "items-record-after",
        identifier="test/middle-fails",
        retries=1,
        delay=0,
        config={"record": {"log_dir": log_dir, "fail_while": cause}, "after": {"log_dir": log_dir}},
    )
    path = write_cluster(tmp_path, "flaky.yml", flaky)
    first = run_cluster_file(path, instance=sqlite_instance, multiprocess=multiprocess)
    assert not first.success
    failures = {e.step_key: e for e in first.all_events if e.event_type_value == "STEP_FAILURE"}
    assert set(failures) == {"record[c00000]", "exosphere__summary"}
    assert "item-1~" in failures["record[c00000]"].event_specific_data.error.message
    assert Counter(read_calls(log_dir)) == Counter(
        ["item-0", "item-2", "after-item-0", "after-item-2"]
    )
    tags = sqlite_instance.get_run_by_id(first.run_id).tags
    counts = [tags[f"exosphere/{k}"] for k in ("items", "succeeded", "failed")]
    assert counts == ["3", "2", "1"]

    cause.unlink()
    again = rerun(first.run_id, instance=sqlite_instance, from_failure=True)
    assert again.success
    calls = Counter(read_calls(log_dir))
    assert calls == Counter(
        ["item-0", "item-2", "item-1", "after-item-0", "after-item-1", "after-item-2"]
    )
    run = sqlite_instance.get_run_by_id(again.run_id)
    assert (run.tags["exosphere/items"], run.tags["exosphere/succeeded"]) == ("3", "3")
    started = {e.step_key for e in again.all_events if e.event_type_value == "STEP_START"}
    assert "items[c00000]" not in started and "exosphere__start" not in started


def test_a_gathering_step_runs_the_chunks_a_killed_run_never_started(tmp_path, sqlite_instance):
    """The kill leaves record[c00003] never started; re-executed from failure, the re-chunk
    after ``pages`` runs that chunk inline, so every item reaches ``after`` exactly once."""
    log_dir = tmp_path / "calls"
    log_dir.mkdir()
    after = "${{ satellites.record.output.label }}/${{ satellites.pages.output.label }}"
    killed = cluster(
        "test/killed-nested",
        [
            fan_out("items", count=40, prefix="item-"),
            record("record", "${{ satellites.items.output.label }}", log_dir, block_on="item-24"),
            fan_out("pages", count=2, prefix="page-"),
            record("after", after, log_dir),
        ],
        retries=0,
    )
    path = write_cluster(tmp_path, "killed-nested.yml", killed)
    env = {**os.environ, "DAGSTER_HOME": sqlite_instance.root_directory}
    proc = subprocess.Popen(
        [sys.executable, "-m", "exosphere_dagster.entry.cli", "run", str(path)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (log_dir / "blocked").exists() and len(read_calls(log_dir)) >= 29)
        time.sleep(0.5)  # let the last finished item reach its checkpoint
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (run,) = sqlite_instance.get_runs()
    sqlite_instance.report_run_failed(run)

    result = rerun(run.run_id, instance=sqlite_instance, from_failure=True)
    assert result.success
    calls = Counter(read_calls(log_dir))
    firsts = Counter(f"item-{i}" for i in range(40))
    seconds = Counter(f"item-{i}/page-{p}" for i in range(40) for p in range(2))
    assert calls == firsts + seconds  # every item once at each satellite
    caught = [
        r.step_key
        for r in sqlite_instance.all_logs(result.run_id)
        if "chunk c00003 of pages never ran in its own step" in r.user_message
    ]
    assert caught == ["pages__rechunk"]  # the gathering step, before it cut the next chunks
    tags = sqlite_instance.get_run_by_id(result.run_id).tags
    assert (tags["exosphere/items"], tags["exosphere/succeeded"]) == ("80", "80")

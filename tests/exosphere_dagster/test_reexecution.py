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

from exosphere_dagster.launch import rerun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: test/killed
  sla: 6h
  trigger: api-call
  retries: 0
  satellites:
    - uses: satellite/test/fan-out
      identifier: items
      config: {{count: 40, prefix: item-}}
    - uses: satellite/test/record
      identifier: record
      config:
        label: "$${{{{ satellites.items.output.label }}}}"
        log_dir: {log_dir}
        block_on: item-24
"""


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
    path = tmp_path / "killed.yml"
    path.write_text(CLUSTER.format(log_dir=log_dir))
    env = {**os.environ, "DAGSTER_HOME": sqlite_instance.root_directory}
    proc = subprocess.Popen(
        [sys.executable, "-m", "exosphere_dagster.cli", "run", str(path)],
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

    # Dagster's own "from failure" selection forgets the chunk step that never started:
    # the summary step notices and fails loudly instead of dropping those 10 items.
    partial = rerun(run.run_id, instance=sqlite_instance, from_failure=True)
    assert not partial.success
    failure = next(e for e in partial.all_events if e.event_type_value == "STEP_FAILURE")
    assert "record[c00003]" in failure.message or "record[c00003]" in str(
        failure.event_specific_data
    )

    result = rerun(partial.run_id, instance=sqlite_instance)  # all steps; checkpoints skip the rest
    assert result.success
    calls = Counter(read_calls(log_dir))
    assert calls == Counter(f"item-{i}" for i in range(40))  # all 40, none twice
    tags = sqlite_instance.get_run_by_id(result.run_id).tags
    assert (tags["exosphere/items"], tags["exosphere/succeeded"]) == ("40", "40")

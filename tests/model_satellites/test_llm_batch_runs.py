"""Batch mode in real Dagster runs of a 24h cluster, against llama-stack's Batch API in front of
llama-server: a killed run's re-execution re-attaches to its batch (one batch on the server), a
row the server fails is retried in a smaller batch then routed, a terminated run cancels its
batch, and a deadline too near answers synchronously (counted in the step's metadata)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from dagster import DagsterRunStatus, execute_job
from test_llm_output_schema import reference_llm_config

from clusters import cluster, failure_branch, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import rerun, resolved, run_cluster_file, run_config
from exosphere_dagster.entry.reconstruct import reconstructable_job
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import DeepSeekR1DistillLlama70BConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST_POLLS = {"EXOSPHERE_BATCH_POLL_SECONDS": "0.2", "EXOSPHERE_BATCH_POLL_MAX_SECONDS": "1"}
PROMPTS = [{"prompt": f"Quarterly report of Co {i}: revenue {i} million."} for i in range(3)]
TOO_LONG = {"prompt": "x " * 3000}  # 6000 byte tokens: more than a slot's 2048-token context
API_KEY = "sk-run-secret-42"


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    for name, value in {**FAST_POLLS, "BATCH_TEST_API_KEY": API_KEY}.items():
        monkeypatch.setenv(name, value)


def llm_cluster(identifier: str, server, recorder) -> dict:
    """deepseek (batch: auto) -> a webhook per answer; failures -> a webhook per item."""
    config = {**reference_llm_config(), "engine": "openai", "base-url": server.url,
              "model": server.model, "api-key": "${{ secrets.OPENAI_KEY }}",
              "max-concurrency": 4}  # fmt: skip
    failure_hook = {
        "url": f"{recorder.url}/failures",
        "method": "POST",
        "body": {"error": "${{ failure.error }}", "attempts": "${{ failure.attempts }}"},
    }
    return cluster(
        identifier,
        [
            satellite_entry(
                "satellite/exospherehost/deepseek-r1-distrill-llama-70b", "deepseek", config
            ),  # fmt: skip
            satellite_entry(
                "satellite/exospherehost/call-webhook",
                "report",
                {
                    "url": f"{recorder.url}/reports",
                    "method": "POST",
                    "body": {"data": "${{ satellites.deepseek.output }}"},
                },
            ),  # fmt: skip
        ],
        sla="24h",
        secrets={"OPENAI_KEY": "env:BATCH_TEST_API_KEY"},
        retries=1,
        delay=0,
        failure=failure_branch(
            "deepseek",
            [
                satellite_entry("satellite/exospherehost/call-webhook", "alert", failure_hook)
            ],  # fmt: skip
        ),
    )


def reports_fit_the_schema(recorder, count: int) -> None:
    schema = DeepSeekR1DistillLlama70BConfig.model_validate(reference_llm_config()).output_schema
    posted = [r.json["data"] for r in recorder.requests if r.path == "/reports"]
    assert len(posted) == count
    for answer in posted:
        jsonschema.validate(answer, schema)


def step_metrics(instance, run_id: str, op: str = "deepseek") -> dict[str, float]:
    """The LLM numbers of ``op``'s steps in one run, summed over its chunk steps."""
    total: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.event_type_value != "STEP_OUTPUT":
            continue
        data = event.event_specific_data
        if not event.step_key.startswith(op) or data.step_output_handle.output_name != "report":
            continue
        for key, value in data.metadata.items():
            if key.startswith("llm/"):
                total[key] = total.get(key, 0.0) + value.value
    return total


def wait_for(predicate, timeout: float = 120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if found := predicate():
            return found
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def start_run(path, instance, multiprocess: bool = False) -> subprocess.Popen:
    """``exosphere run`` in its own process (and session), on the test's instance; with
    ``multiprocess`` each step in a process of its own, as ``dagster dev`` and Kubernetes run
    them (``run_cluster_file(multiprocess=True)``: the CLI has no flag for it)."""
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, **FAST_POLLS}
    if multiprocess:
        code = (
            "import json, sys; from exosphere_dagster.entry.launch import run_cluster_file; "
            "run_cluster_file(sys.argv[1], json.loads(sys.argv[2]), multiprocess=True)"
        )
        command = ["-c", code, str(path), json.dumps(PROMPTS)]
    else:
        inputs = [arg for p in PROMPTS for arg in ("--input", json.dumps(p))]
        command = ["-m", "exosphere_dagster.entry.cli", "run", str(path), *inputs]
    return subprocess.Popen(
        [sys.executable, *command],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def in_progress(server, identifier: str):
    """The cluster's only batch, once the server works on it."""
    found = server.batches(exosphere_cluster=identifier)
    return found[0] if found and found[0]["status"] == "in_progress" else None


def test_a_killed_run_re_executed_re_attaches_to_its_batch(
    tmp_path, sqlite_instance, batch_api, http_recorder
):
    identifier = "test/batch-killed"
    path = write_cluster(tmp_path, "killed.yml", llm_cluster(identifier, batch_api, http_recorder))
    batch_api.pause_model()  # the batch stays in progress while the step waits on it
    try:
        proc = start_run(path, sqlite_instance)
        try:
            batch = wait_for(lambda: in_progress(batch_api, identifier))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # no handler runs: nothing cancels the batch
            proc.wait()
    finally:
        batch_api.resume_model()
    wait_for(lambda: batch_api.batch(batch["id"])["status"] == "completed")
    (run,) = sqlite_instance.get_runs()
    assert run.status == DagsterRunStatus.STARTED
    assert http_recorder.requests == []

    again = rerun(run.run_id, instance=sqlite_instance, from_failure=True)
    assert again.success
    (only,) = batch_api.batches(exosphere_cluster=identifier)  # re-attached, not paid twice
    assert only["id"] == batch["id"] and only["request_counts"]["completed"] == 3
    reports_fit_the_schema(http_recorder, 3)
    metrics = step_metrics(sqlite_instance, again.run_id)
    assert metrics["llm/batches"] == 0 and metrics["llm/sync_fallbacks"] == 0
    assert metrics["llm/batch_prompt_tokens"] == metrics["llm/prompt_tokens"] > 0
    logs = "\n".join(r.user_message for r in sqlite_instance.all_logs(again.run_id))
    assert f"re-attaching to batch {batch['id']} for 3 item(s)" in logs
    stored = [f for f in Path(sqlite_instance.root_directory).rglob("*") if f.is_file()]
    assert any("exosphere_checkpoints" in str(f) for f in stored)  # the state is in there
    assert not [f for f in stored if API_KEY.encode() in f.read_bytes()]  # event logs too


def test_a_row_the_server_fails_is_retried_in_a_smaller_batch_then_routed(
    tmp_path, sqlite_instance, batch_api, http_recorder
):
    identifier = "test/batch-bad-row"
    path = write_cluster(tmp_path, "bad.yml", llm_cluster(identifier, batch_api, http_recorder))
    result = run_cluster_file(path, [*PROMPTS[:2], TOO_LONG], instance=sqlite_instance)
    assert result.success  # the failed item was routed
    batches = batch_api.batches(exosphere_cluster=identifier)  # created in the same second:
    counts = sorted((b["request_counts"] for b in batches), key=lambda c: -c["total"])  # no order
    assert counts == [
        {"total": 3, "completed": 2, "failed": 1},
        {"total": 1, "completed": 0, "failed": 1},
    ]
    (alert,) = [r.json for r in http_recorder.requests if r.path == "/failures"]
    assert alert["attempts"] == 2 and "exceeds the available context size" in alert["error"]
    assert alert["error"].startswith("RowNotRun: batch row failed")  # retryable, not fatal
    reports_fit_the_schema(http_recorder, 2)
    metrics = step_metrics(sqlite_instance, result.run_id)
    assert metrics["llm/batches"] == 2 and metrics["llm/sync_fallbacks"] == 0


def test_a_terminated_run_cancels_its_batch(tmp_path, sqlite_instance, batch_api, http_recorder):
    """SIGINT to the run process is what Dagster's run termination sends; the executor passes
    the interrupt to the step process, whose satellite cancels its batch on the way out.
    (In-process execution would instead retry the interrupted step: Dagster honours the op's
    RetryPolicy on interrupts, and the retry submits a new batch.)"""
    identifier = "test/batch-terminated"
    path = write_cluster(tmp_path, "stop.yml", llm_cluster(identifier, batch_api, http_recorder))
    batch_api.pause_model()
    try:
        proc = start_run(path, sqlite_instance, multiprocess=True)
        try:
            batch = wait_for(lambda: in_progress(batch_api, identifier))
            proc.send_signal(signal.SIGINT)  # what Dagster's run termination sends the run
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert wait_for(lambda: batch_api.batch(batch["id"])["status"] == "cancelled", 30)
    finally:
        batch_api.resume_model()
    (run,) = sqlite_instance.get_runs()
    assert run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    assert http_recorder.requests == []
    assert len(batch_api.batches(exosphere_cluster=identifier)) == 1  # the step was not retried


def test_a_deadline_too_near_for_a_batch_answers_synchronously(
    tmp_path, sqlite_instance, batch_api, http_recorder
):
    """Triggered 23.5 hours ago, the 24h run has 30 minutes left: less than the 60-minute
    reserve, so no batch is created and the step counts its synchronous answers."""
    identifier = "test/batch-late-run"
    path = write_cluster(tmp_path, "late.yml", llm_cluster(identifier, batch_api, http_recorder))
    tags = resolved(path).run.window_tags(datetime.now(UTC) - timedelta(hours=23, minutes=30))
    with execute_job(
        reconstructable_job(path), instance=sqlite_instance, run_config=run_config(PROMPTS),
        tags=tags, raise_on_error=False,
    ) as result:  # fmt: skip
        assert result.success
        run_id = result.run_id
    assert batch_api.batches(exosphere_cluster=identifier) == []
    reports_fit_the_schema(http_recorder, 3)
    metrics = step_metrics(sqlite_instance, run_id)
    assert metrics["llm/sync_fallbacks"] == 3 and metrics["llm/batches"] == 0
    assert metrics["llm/batch_prompt_tokens"] == 0 < metrics["llm/prompt_tokens"]
    logs = "\n".join(r.user_message for r in sqlite_instance.all_logs(run_id))
    assert "3 item(s) answered synchronously, not by a batch" in logs

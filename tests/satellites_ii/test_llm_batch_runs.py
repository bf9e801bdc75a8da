"""Batch mode in real Dagster runs: a 24h cluster's LLM satellite (``engine: openai``) sends its
chunk to a real Batch API server process (llama-stack in front of llama-server, see
batch_server.py). A row the server fails is retried in a new batch, then routed; a run killed
with SIGKILL re-attaches to its batch when re-executed from failure, and a step Dagster retries
after an interrupt re-attaches too (one batch on the server); a terminated run cancels its
batch; a deadline too near answers synchronously, counted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dagster import DagsterEventType, execute_job
from test_llm_output_schema import reference_llm_config

from exosphere_dagster.catalog import registry_with_plugins
from exosphere_dagster.launch import rerun, run_cluster_file, run_config
from exosphere_dagster.reconstruct import reconstructable_job
from exosphere_dagster.triggers import trigger_tags
from satellite_ops.llm import DeepSeekR1DistillLlama70BConfig
from yaml_loader import load, plan

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LLM = "deepseek-r1-distrill-llama-70b"
KEY_ENV = "EXOSPHERE_TEST_BATCH_KEY"
API_KEY = "sk-exosphere-batch-run-key-never-logged"
PROMPT = "Parse this quarterly report into the output schema: Co {i}, Q2 2026, revenue {i}."
TOO_LONG = "Parse this report: " + "x" * 5000  # more tokens than a llama-server slot holds


def llm_config(stack) -> dict[str, Any]:
    return {
        **reference_llm_config(),
        "engine": "openai",
        "base-url": stack.url,
        "model": stack.model,
        "api-key": "${{ secrets.LLM_KEY }}",
        "batch-poll-seconds": 0.2,
        "batch-poll-max-seconds": 1,
    }


def write_cluster(tmp_path: Path, stack, recorder_url: str, name: str) -> Path:
    cluster = {
        "version": "0.0.1b",
        "cluster": {
            "identifier": f"test/{name}",
            "sla": "24h",
            "trigger": "api-call",
            "retries": 1,
            "delay": 0,
            "secrets": [{"LLM_KEY": f"env:{KEY_ENV}"}],
            "satellites": [
                {"uses": f"satellite/exospherehost/{LLM}", "identifier": LLM,
                 "config": llm_config(stack)},
                {"uses": "satellite/exospherehost/call-webhook", "identifier": "call-webhook",
                 "config": {"url": f"{recorder_url}/reports", "method": "POST",
                            "body": [{"data": f"${{{{ satellites.{LLM}.output }}}}"}]}},
            ],
            "failure": {
                "from": LLM,
                "satellites": [
                    {"uses": "satellite/exospherehost/call-webhook", "identifier": "report-failure",
                     "config": {"url": f"{recorder_url}/failures", "method": "POST",
                                "body": {"error": "${{ failure.error }}",
                                         "attempts": "${{ failure.attempts }}"}}},
                ],
            },
        },
    }  # fmt: skip
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return path


def schema() -> dict:
    return DeepSeekR1DistillLlama70BConfig.model_validate(reference_llm_config()).output_schema


def posted(recorder, path: str) -> list[Any]:
    return [r.json for r in recorder.requests if r.path == path]


def llm_metadata(instance, run_id: str) -> dict[str, Any]:
    """The LLM step's report metadata (one chunk here)."""
    records = instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT)
    (event,) = [
        r.dagster_event
        for r in records
        if r.dagster_event.step_key.startswith(LLM.replace("-", "_"))
        and r.dagster_event.step_output_data.output_name == "report"
    ]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def messages(instance, run_id: str) -> str:
    return "\n".join(r.user_message for r in instance.all_logs(run_id))


def wait_for(predicate, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def start_cli_run(path: Path, instance, inputs: list[dict]) -> subprocess.Popen:
    args = [sys.executable, "-m", "exosphere_dagster.cli", "run", str(path)]
    for value in inputs:
        args += ["--input", json.dumps(value)]
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory}
    return subprocess.Popen(
        args, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_multiprocess_run(path: Path, instance, inputs: list[dict]) -> subprocess.Popen:
    """A run with the multiprocess executor (each chunk step in its own process), launched
    like ``exosphere run`` in a process of its own."""
    code = (
        "import json, sys; from exosphere_dagster.launch import run_cluster_file; "
        "sys.exit(0 if run_cluster_file(sys.argv[1], json.loads(sys.argv[2]), "
        "multiprocess=True).success else 1)"
    )
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory}
    return subprocess.Popen(
        [sys.executable, "-c", code, str(path), json.dumps(inputs)], env=env,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def new_batches(stack, before: set[str]) -> list[dict]:
    return [b for b in stack.batches() if b["id"] not in before]


def in_progress(stack, before: set[str]) -> list[dict]:
    """The new batches, once there is one and all are in progress."""
    batches = new_batches(stack, before)
    return batches if batches and all(b["status"] == "in_progress" for b in batches) else []


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)


def test_a_24h_cluster_answers_by_batch_and_routes_the_row_the_server_fails(
    tmp_path, dagster_instance, batch_stack, http_recorder
):
    path = write_cluster(tmp_path, batch_stack, http_recorder.url, "llm-batch")
    before = {b["id"] for b in batch_stack.batches()}
    inputs = [{"prompt": PROMPT.format(i=i)} for i in range(4)] + [{"prompt": TOO_LONG}]
    result = run_cluster_file(path, inputs, instance=dagster_instance)
    assert result.success  # the failed row was routed, so the run succeeds

    reports = posted(http_recorder, "/reports")
    assert len(reports) == 4
    for body in reports:
        jsonschema.validate(body[0]["data"], schema())
    (failure,) = posted(http_recorder, "/failures")
    assert "exceeds the available context size" in failure["error"]
    assert failure["attempts"] == 2  # the row failed in the batch, was retried, then routed

    batches = new_batches(batch_stack, before)  # the chunk, then the retry of its failed row
    assert sorted(b["request_counts"]["total"] for b in batches) == [1, 5]
    metadata = llm_metadata(dagster_instance, result.run_id)
    assert metadata["llm/batches"] == 2
    assert metadata["llm/batch_prompt_tokens"] == metadata["llm/prompt_tokens"] > 0
    assert metadata["llm/batch_completion_tokens"] == metadata["llm/completion_tokens"] > 0
    assert "llm/sync_fallbacks" not in metadata

    # the API key is in no event, no metadata and no checkpoint (the batch ids are)
    assert API_KEY not in messages(dagster_instance, result.run_id) + repr(metadata)
    stored = b"".join(p.read_bytes() for p in Path(dagster_instance.root_directory).rglob("*.ckpt"))
    assert batches[0]["id"].encode() in stored and API_KEY.encode() not in stored


def test_a_killed_run_reattaches_to_its_batch_when_reexecuted(
    tmp_path, dagster_instance, batch_stack, http_recorder
):
    path = write_cluster(tmp_path, batch_stack, http_recorder.url, "llm-batch-killed")
    before = {b["id"] for b in batch_stack.batches()}
    inputs = [{"prompt": PROMPT.format(i=i)} for i in range(4)]
    with batch_stack.inference_paused():  # the batch stays in progress while the step dies
        proc = start_cli_run(path, dagster_instance, inputs)
        try:
            (batch,) = wait_for(lambda: in_progress(batch_stack, before))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    (run,) = dagster_instance.get_runs()
    dagster_instance.report_run_failed(run)  # what run monitoring does in a deployment

    again = rerun(run.run_id, instance=dagster_instance, from_failure=True)
    assert again.success
    assert [b["id"] for b in new_batches(batch_stack, before)] == [batch["id"]]  # paid once
    assert f"re-attached to batch {batch['id']}" in messages(dagster_instance, again.run_id)
    metadata = llm_metadata(dagster_instance, again.run_id)
    assert "llm/batches" not in metadata and metadata["llm/batch_prompt_tokens"] > 0
    reports = posted(http_recorder, "/reports")
    assert len(reports) == 4
    for body in reports:
        jsonschema.validate(body[0]["data"], schema())


def test_an_interrupted_step_that_dagster_retries_reattaches_to_its_batch(
    tmp_path, dagster_instance, batch_stack, http_recorder
):
    """An interrupt while the run goes on (a preempted step pod gets SIGTERM, mapped to SIGINT;
    here the run process of an in-process run gets SIGINT) fails the step, and Dagster retries
    it (the op's RetryPolicy): the batch is kept and the retry re-attaches to it."""
    path = write_cluster(tmp_path, batch_stack, http_recorder.url, "llm-batch-retried")
    before = {b["id"] for b in batch_stack.batches()}
    inputs = [{"prompt": PROMPT.format(i=i)} for i in range(3)]
    with batch_stack.inference_paused():
        proc = start_cli_run(path, dagster_instance, inputs)
        try:
            (batch,) = wait_for(lambda: in_progress(batch_stack, before))
            os.kill(proc.pid, signal.SIGINT)
            (run,) = dagster_instance.get_runs()
            wait_for(lambda: f"re-attached to batch {batch['id']}" in messages(
                dagster_instance, run.run_id))  # fmt: skip
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.wait(timeout=120) == 0  # the run succeeds once llama-server answers
    log = messages(dagster_instance, run.run_id)
    assert f"step interrupted while batch {batch['id']} runs; the run goes on" in log
    assert [b["id"] for b in new_batches(batch_stack, before)] == [batch["id"]]
    assert len(posted(http_recorder, "/reports")) == 3


def test_a_terminated_run_cancels_its_batch(tmp_path, dagster_instance, batch_stack, http_recorder):
    """Terminating a run as Dagster's run launchers do: mark the run CANCELING, then interrupt
    its process (the multiprocess executor then interrupts its step processes)."""
    path = write_cluster(tmp_path, batch_stack, http_recorder.url, "llm-batch-terminated")
    before = {b["id"] for b in batch_stack.batches()}
    inputs = [{"prompt": PROMPT.format(i=i)} for i in range(2)]
    with batch_stack.inference_paused():
        proc = start_multiprocess_run(path, dagster_instance, inputs)
        try:
            (batch,) = wait_for(lambda: in_progress(batch_stack, before))
            (run,) = dagster_instance.get_runs()
            dagster_instance.report_run_canceling(run)
            os.kill(proc.pid, signal.SIGINT)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        wait_for(lambda: new_batches(batch_stack, before)[0]["status"] == "cancelled")
    assert [b["id"] for b in new_batches(batch_stack, before)] == [batch["id"]]
    assert f"cancelled batch {batch['id']}: the run is being terminated" in messages(
        dagster_instance, run.run_id
    )
    assert posted(http_recorder, "/reports") == []


def test_a_deadline_too_near_answers_synchronously_and_counts_it(
    tmp_path, dagster_instance, batch_stack, http_recorder
):
    path = write_cluster(tmp_path, batch_stack, http_recorder.url, "llm-batch-late")
    before = {b["id"] for b in batch_stack.batches()}
    triggered = datetime.now(UTC) - timedelta(hours=23)  # 1 h left: inside the 1 h reserve
    inputs = [{"prompt": PROMPT.format(i=i)} for i in range(3)]
    with execute_job(
        reconstructable_job(path),
        instance=dagster_instance,
        run_config=run_config(inputs),
        tags=trigger_tags(plan(load(path), registry_with_plugins()), triggered),
    ) as result:
        assert result.success
    assert new_batches(batch_stack, before) == []
    metadata = llm_metadata(dagster_instance, result.run_id)
    assert metadata["llm/sync_fallbacks"] == 3 and "llm/batches" not in metadata
    assert "3 prompt(s) answered synchronously: the deadline" in messages(
        dagster_instance, result.run_id
    )
    reports = posted(http_recorder, "/reports")
    assert len(reports) == 3
    for body in reports:
        jsonschema.validate(body[0]["data"], schema())

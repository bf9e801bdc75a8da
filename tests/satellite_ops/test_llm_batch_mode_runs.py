"""Batch mode inside the runtime and a real Dagster run, against the scripted Batch API server
(fake_batch_api.py): the runtime retries a malformed row in a smaller batch; a call cut by
``timeout:`` cancels its batch and the retry keeps what it answered; an abandoned batch is
named in the step's metadata and log."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from dagster import execute_job
from fake_batch_api import PROMPT_TOKENS, Script, fake_batch_api

from clusters import cluster, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import run_config
from exosphere_dagster.entry.reconstruct import reconstructable_job
from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
from exosphere_dagster.runtime.items import seed_items
from satellite_ops.context import BatchPolicy
from satellite_ops.registry import define_satellite
from satellite_ops.satellites.llm import IDENTIFIER, LlmConfig, llm
from satellite_ops.testing import CapturedLog
from yaml_loader.ir import RetrySettings, SatelliteNode
from yaml_loader.templates import compile_value

pytestmark = pytest.mark.integration

POLICY = BatchPolicy(
    tiers=frozenset({"24h"}), reserve_seconds=3600, poll_seconds=0.01, poll_max_seconds=0.05
)
PROMPTS = [{"prompt": f"prompt {i}"} for i in range(3)]


@pytest.fixture
def api():
    with fake_batch_api() as server:
        yield server


def llm_config(api) -> dict:
    return {"model": "fake", "engine": "openai", "base-url": api.url, "api-key": "sk-fake",
            "batch": "always", "output-format": "text"}  # fmt: skip


def chunk_job(api, *, retries: int, timeout: float | None = None) -> tuple[ChunkJob, CapturedLog]:
    node = SatelliteNode(
        id="llm", op_name="llm", name="llm", uses=IDENTIFIER, branch="main", parents=(),
        config=compile_value(llm_config(api)), input=None, retry=RetrySettings(retries, 0.0),
        timeout=timeout, concurrency=None, resources=None, secrets=frozenset(), line=1, column=1,
    )  # fmt: skip
    log = logging.getLogger(f"test.batch.runtime.{id(node)}")
    captured = CapturedLog()
    log.addHandler(captured)
    log.setLevel(logging.DEBUG)
    definition = define_satellite(IDENTIFIER, llm, LlmConfig, batched=True, max_concurrency=1)
    job = ChunkJob(
        node=node, definition=definition, base_scope={"run": {}}, log=log, run_id="run-1",
        cluster="test/fake", deadline=datetime.now(UTC) + timedelta(hours=24), sla="24h",
        batch=POLICY,
    )  # fmt: skip
    return job, captured


def test_the_runtime_retries_a_malformed_row_in_a_smaller_batch(api):
    api.scripts = [Script(malformed={0: "status"})]
    job, _ = chunk_job(api, retries=2)
    children, report = run_chunk(job, seed_items(PROMPTS))
    assert report.succeeded == 3 and report.failed == []
    assert sorted(c.value["text"] for c in children) == [f"answer to: prompt {i}" for i in range(3)]
    assert [len(b.rows) for b in api.ordered()] == [3, 1] and api.sync_prompts == []
    assert report.metrics["llm/batch_prompt_tokens"] == 3 * PROMPT_TOKENS  # 2 readable + 1 re-asked


def test_a_call_cut_by_timeout_cancels_its_batch_and_the_retry_keeps_its_answers(api):
    """The first batch never ends by itself: ``timeout: 1`` cuts the call, which cancels the
    batch (one row answered by then). The retry re-attaches to the cancelled batch, takes
    that answer, and sends the other two rows in a new batch: each prompt is paid once."""
    never = threading.Event()
    api.scripts = [Script(hold=never, answered=1)]
    job, captured = chunk_job(api, retries=1, timeout=1.0)
    children, report = run_chunk(job, seed_items(PROMPTS))
    assert report.succeeded == 3 and report.failed == [], report.failed
    first, second = api.ordered()
    assert api.cancels == [first.id] and first.status == "cancelled"
    assert len(second.rows) == 2 and api.sync_prompts == []
    assert sorted(api.billed()) == sorted(p["prompt"] for p in PROMPTS)
    assert any("timed out after 1.0s" in m for m in captured.at("WARNING"))
    assert report.metrics[f"llm/abandoned_batch/{first.id}"] == 2


def test_an_abandoned_batch_is_named_in_the_step_metadata_and_log(
    api, tmp_path, sqlite_instance, monkeypatch
):
    monkeypatch.setenv("EXOSPHERE_BATCH_POLL_SECONDS", "0.01")
    monkeypatch.setenv("EXOSPHERE_BATCH_POLL_MAX_SECONDS", "0.05")
    monkeypatch.setenv("FAKE_BATCH_KEY", "sk-fake-run-secret")
    api.scripts = [Script(end="expired", answered=1)]
    config = {**llm_config(api), "api-key": "${{ secrets.KEY }}"}
    body = cluster(
        "test/batch-abandoned", [satellite_entry(IDENTIFIER, "llm", config)], sla="24h",
        secrets={"KEY": "env:FAKE_BATCH_KEY"}, retries=0,
    )  # fmt: skip
    path = write_cluster(tmp_path, "abandoned.yml", body)
    with execute_job(
        reconstructable_job(path), instance=sqlite_instance, run_config=run_config(PROMPTS)
    ) as result:
        assert result.success
        run_id = result.run_id
    expired, _ = api.ordered()
    metadata: dict = {}
    for record in sqlite_instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value == "STEP_OUTPUT":
            metadata.update({k: v.value for k, v in event.event_specific_data.metadata.items()})
    assert metadata[f"llm/abandoned_batch/{expired.id}"] == 2
    assert metadata["llm/abandoned_batches"] == 1 and metadata["llm/sync_fallbacks"] == 0
    logs = "\n".join(r.user_message for r in sqlite_instance.all_logs(run_id))
    assert f"batch {expired.id} abandoned, ended expired on the server" in logs
    assert "sk-fake-run-secret" not in logs

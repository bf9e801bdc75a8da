"""Batch mode of the LLM satellites against a real Batch API server: llama-stack's reference
batches provider on 127.0.0.1, in front of llama-server (batch_server.py). Files, batches,
output and error files, cancellation: all the server's own."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from test_llm_output_schema import reference_llm_config

from satellite_ops import BatchItem, FatalError, RetryableError, SatelliteContext
from satellite_ops.context import BatchPolicy, MemoryState
from satellite_ops.helpers.batch_api import parse_row
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import (
    DeepSeekR1DistillLlama70BConfig,
    deepseek_r1_distrill_llama_70b,
)
from satellite_ops.testing import CapturedLog

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_KEY = "sk-batch-test-0123456789"
POLICY = BatchPolicy(tiers=frozenset({"24h"}), reserve_seconds=3600, poll_seconds=0.2,
                     poll_max_seconds=1.0)  # fmt: skip


def config(server, **extra) -> DeepSeekR1DistillLlama70BConfig:
    raw = {**reference_llm_config(), "engine": "openai", "base-url": server.url,
           "model": server.model, "api-key": API_KEY, "max-concurrency": 4, **extra}  # fmt: skip
    return DeepSeekR1DistillLlama70BConfig.model_validate(raw)


def items(server, count: int, cluster: str, *, deadline=None, sla="24h", **extra):
    """``count`` items sharing one step's context facts (state, metrics, deadline)."""
    log = logging.getLogger(f"test.batch.{cluster}")
    captured = CapturedLog()
    log.addHandler(captured)
    log.setLevel(logging.DEBUG)
    state, metrics = MemoryState(), {}
    chosen = config(server, **extra)
    made = [
        BatchItem(
            chosen,
            {"prompt": f"Quarterly report of Co {i}: revenue {i} million, net income 3."},
            SatelliteContext(
                log=log,
                item_id=f"report-{i}~{i:012x}",
                cluster=cluster,
                run_id="run-1",
                satellite="deepseek",
                metrics=metrics,
                deadline=deadline,
                sla=sla,
                state=state,
                batch=POLICY,
            ),  # fmt: skip
        )
        for i in range(count)
    ]
    return made, state, metrics, captured


def test_a_24h_chunk_goes_through_one_batch_and_every_answer_fits_the_schema(batch_api):
    deadline = datetime.now(UTC) + timedelta(hours=24)
    batch, state, metrics, captured = items(batch_api, 6, "test/batch-ok", deadline=deadline)
    results = asyncio.run(deepseek_r1_distrill_llama_70b(batch))
    schema = batch[0].config.output_schema
    for result in results:
        assert isinstance(result, list), result
        (answer,) = result
        jsonschema.validate(answer, schema)
    (created,) = batch_api.batches(exosphere_cluster="test/batch-ok")
    assert created["status"] == "completed"
    assert created["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
    assert metrics["llm/batches"] == 1 and metrics["llm/sync_fallbacks"] == 0
    assert metrics["llm/batch_prompt_tokens"] == metrics["llm/prompt_tokens"] > 6 * 20
    assert metrics["llm/batch_completion_tokens"] == metrics["llm/completion_tokens"] > 0
    assert any(created["id"] in m for m in captured.messages)
    assert state._values  # the batch's record was kept, then its rows handed back
    assert all(records == [] for records in state._values.values())
    assert API_KEY not in repr(state._values) + "\n".join(captured.messages)


def test_a_12h_chunk_or_batch_never_calls_synchronously(batch_api):
    deadline = datetime.now(UTC) + timedelta(hours=12)
    twelve, _, metrics, _ = items(batch_api, 2, "test/batch-12h", deadline=deadline, sla="12h")
    never, _, never_metrics, _ = items(batch_api, 2, "test/batch-never", batch="never")
    for batch in (twelve, never):
        assert all(isinstance(r, list) for r in asyncio.run(deepseek_r1_distrill_llama_70b(batch)))
    assert batch_api.batches(exosphere_cluster="test/batch-12h") == []
    assert batch_api.batches(exosphere_cluster="test/batch-never") == []
    assert "llm/batches" not in metrics and "llm/batches" not in never_metrics


def test_a_deadline_inside_the_reserve_answers_synchronously_and_counts_it(batch_api):
    deadline = datetime.now(UTC) + timedelta(seconds=POLICY.reserve_seconds - 60)
    batch, _, metrics, captured = items(batch_api, 3, "test/batch-late", deadline=deadline)
    results = asyncio.run(deepseek_r1_distrill_llama_70b(batch))
    assert all(isinstance(r, list) for r in results)
    assert batch_api.batches(exosphere_cluster="test/batch-late") == []
    assert metrics["llm/sync_fallbacks"] == 3 and metrics["llm/batches"] == 0
    assert metrics["llm/batch_prompt_tokens"] == 0 < metrics["llm/prompt_tokens"]
    assert any("answered synchronously" in m for m in captured.at("WARNING"))


def test_a_batch_still_running_when_the_wait_ends_is_cancelled_then_answered_synchronously(
    batch_api,
):
    """The model is paused, so the batch stays in progress; 2 s after submission the chunk's
    wait ends (deadline - reserve): the batch is cancelled on the server and the items are
    answered synchronously once the model runs again."""
    deadline = datetime.now(UTC) + timedelta(seconds=POLICY.reserve_seconds + 2)
    batch, _, metrics, _ = items(batch_api, 3, "test/batch-wait-ends", deadline=deadline)
    resumed = threading.Event()

    def resume_when_cancelled() -> None:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            found = batch_api.batches(exosphere_cluster="test/batch-wait-ends")
            if found and found[0]["status"] in ("cancelling", "cancelled"):
                break
            time.sleep(0.1)
        batch_api.resume_model()
        resumed.set()

    batch_api.pause_model()
    watcher = threading.Thread(target=resume_when_cancelled, daemon=True)
    try:
        watcher.start()
        results = asyncio.run(deepseek_r1_distrill_llama_70b(batch))
    finally:
        watcher.join(60)
        batch_api.resume_model()
    assert resumed.is_set()
    (cancelled,) = batch_api.batches(exosphere_cluster="test/batch-wait-ends")
    assert cancelled["status"] == "cancelled"
    assert all(isinstance(r, list) for r in results)
    assert metrics["llm/batches"] == 1 and metrics["llm/sync_fallbacks"] == 3
    assert metrics["llm/batch_prompt_tokens"] == 0


def test_rows_as_providers_write_them():
    chat = {"choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2}}  # fmt: skip
    _, answer = parse_row({"custom_id": "a", "response": {"status_code": 200, "body": chat}})
    assert (answer.text, answer.prompt_tokens, answer.completion_tokens) == ("{}", 5, 2)
    refused = {"status_code": 400, "body": {"error": {"code": "bad", "message": "too long"}}}
    _, error = parse_row({"custom_id": "b", "response": refused})
    assert isinstance(error, FatalError) and "too long" in str(error)
    throttled = {"status_code": 429, "body": {"error": {"message": "slow down"}}}
    assert isinstance(parse_row({"custom_id": "c", "response": throttled})[1], RetryableError)
    only_error = {"custom_id": "d", "error": {"type": "request_failed", "message": "boom"}}
    custom_id, error = parse_row(only_error)
    assert custom_id == "d" and isinstance(error, RetryableError) and "boom" in str(error)

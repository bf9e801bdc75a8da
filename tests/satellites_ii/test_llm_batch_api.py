"""Batch mode of the LLM satellite against a real Batch API server process on 127.0.0.1:
llama-stack's reference batches provider in front of llama-server (batch_server.py). The
client's upload, create, poll, per-item mapping of output and error files, and cancel; then
the satellite's choices: batch on a 24h tier, re-attach from the step state, synchronous
fallback when the deadline is too near, cancel at the deadline reserve."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import threading
import time
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from test_llm_output_schema import reference_llm_config

from satellite_ops import BatchItem, FatalError, RetryableError, SatelliteContext
from satellite_ops.context import MemoryState
from satellite_ops.llm import DeepSeekR1DistillLlama70BConfig, deepseek_r1_distrill_llama_70b
from satellite_ops.llm_batch import (
    TAG,
    BatchApi,
    BatchPolicy,
    failed_batch_errors,
    input_file,
    results,
    wait_for,
)
from satellite_ops.llm_engines import EngineSettings, Generation, GenerationRequest, openai_body

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_KEY = "sk-exosphere-test-key-never-logged"
FAST = BatchPolicy(poll_seconds=0.1, poll_max_seconds=0.5)
LOG = logging.getLogger("test.llm_batch")
PROMPT = "Parse this quarterly report into the output schema: Co {i}, Q1 2026, revenue {i}."


def config(stack, **extra) -> DeepSeekR1DistillLlama70BConfig:
    raw = {
        **reference_llm_config(),
        "engine": "openai",
        "base-url": stack.url,
        "model": stack.model,
        "api-key": API_KEY,
        "batch-poll-seconds": 0.1,
        "batch-poll-max-seconds": 0.5,
        **extra,
    }
    return DeepSeekR1DistillLlama70BConfig.model_validate(raw)


def items(stack, count, *, sla="24h", state=None, metrics=None, deadline=None, **extra):
    cfg = config(stack, **extra)
    state = state if state is not None else MemoryState()
    metrics = metrics if metrics is not None else {}
    return [
        BatchItem(
            cfg,
            {"prompt": PROMPT.format(i=i)},
            SatelliteContext(
                log=LOG,
                item_id=f"report-{i}~{i:012x}",
                sla=sla,
                state=state,
                metrics=metrics,
                deadline=deadline,
            ),  # fmt: skip
        )
        for i in range(count)
    ]


def assert_valid(results_, schema) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    for result in results_:
        assert isinstance(result, list), result
        (answer,) = result
        assert list(validator.iter_errors(answer)) == []


# -- the client -----------------------------------------------------------------------------
def test_output_and_error_lines_come_back_per_custom_id(batch_stack):
    schema = config(batch_stack).output_schema
    settings = EngineSettings(engine="openai", model=batch_stack.model, max_tokens=1024)
    rows = [
        (f"item-{i}~x", openai_body(settings, GenerationRequest(PROMPT.format(i=i), schema)))
        for i in range(3)
    ]
    rows.append(("too-long~x", openai_body(settings, GenerationRequest("x" * 5000))))

    async def go():
        async with BatchApi(batch_stack.url, {}, 30) as api:
            file_id = await api.upload(input_file(rows), "chunk.jsonl")
            created = await api.create(file_id, {TAG: "tag-output"})
            found = await api.find("tag-output", since=created["created_at"])
            until = datetime.now(UTC) + timedelta(minutes=2)
            done = await wait_for(api, created["id"], until, FAST, log=LOG)
            return created, found, done, await results(api, done)

    created, found, done, answers = asyncio.run(go())
    assert found["id"] == created["id"]
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 4, "completed": 3, "failed": 1}
    assert set(answers) == {cid for cid, _ in rows}
    for i in range(3):
        answer = answers[f"item-{i}~x"]
        assert isinstance(answer, Generation) and answer.completion_tokens > 0
        jsonschema.validate(json.loads(answer.text), schema)
    failed = answers["too-long~x"]
    assert isinstance(failed, RetryableError)
    assert "exceeds the available context size" in str(failed)


def test_a_batch_the_server_refuses_fails_its_items_fatally(batch_stack):
    settings = EngineSettings(engine="openai", model="no-such-model")
    rows = [(f"item-{i}~x", openai_body(settings, GenerationRequest("hi"))) for i in range(2)]

    async def go():
        async with BatchApi(batch_stack.url, {}, 30) as api:
            created = await api.create(await api.upload(input_file(rows), "bad.jsonl"), {})
            until = datetime.now(UTC) + timedelta(minutes=2)
            return await wait_for(api, created["id"], until, FAST, log=LOG)

    done = asyncio.run(go())
    assert done["status"] == "failed"
    errors = failed_batch_errors(done, [cid for cid, _ in rows])
    assert all(isinstance(e, FatalError) for e in errors.values())
    assert "model_not_found" in str(errors["item-1~x"])


def test_cancel_stops_a_batch_in_progress(batch_stack):
    settings = EngineSettings(engine="openai", model=batch_stack.model, max_tokens=16)
    rows = [(f"item-{i}~x", openai_body(settings, GenerationRequest("hi"))) for i in range(3)]

    async def go():
        async with BatchApi(batch_stack.url, {}, 30) as api:
            created = await api.create(await api.upload(input_file(rows), "c.jsonl"), {})
            while (await api.get(created["id"]))["status"] != "in_progress":
                await asyncio.sleep(0.05)
            await api.cancel(created["id"])
            until = datetime.now(UTC) + timedelta(minutes=1)
            done = await wait_for(api, created["id"], until, FAST, log=LOG)
            return done, await results(api, done)

    with batch_stack.inference_paused():
        done, answers = asyncio.run(go())
    assert done["status"] == "cancelled" and answers == {}


def test_polling_backs_off_and_honours_retry_after(http_recorder):
    batch = {"id": "batch_1", "status": "in_progress"}
    http_recorder.script(
        [
            (429, {"Retry-After": "3"}, {"error": "slow down"}),
            (200, {}, batch),
            (200, {}, batch),
            (200, {}, {**batch, "status": "completed"}),
        ]
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go():
        async with BatchApi(f"{http_recorder.url}/v1", {"Authorization": "Bearer k"}, 5) as api:
            until = datetime.now(UTC) + timedelta(hours=1)
            policy = BatchPolicy(poll_seconds=1, poll_max_seconds=2)
            return await wait_for(api, "batch_1", until, policy, log=LOG, sleep=sleep)

    assert asyncio.run(go())["status"] == "completed"
    assert waits == [3, 1.5, 2]  # Retry-After over the first pause; then x1.5, capped at 2
    assert {r.path for r in http_recorder.requests} == {"/v1/batches/batch_1"}


# -- the satellite --------------------------------------------------------------------------
def test_a_24h_chunk_goes_as_one_batch_and_a_retried_step_reattaches(batch_stack, caplog):
    caplog.set_level(logging.INFO, LOG.name)
    before = len(batch_stack.batches())
    state, metrics = MemoryState(), {}
    chunk = items(batch_stack, 6, state=state, metrics=metrics)
    first = asyncio.run(deepseek_r1_distrill_llama_70b(chunk))
    assert_valid(first, chunk[0].config.output_schema)
    assert len(batch_stack.batches()) == before + 1
    assert metrics["llm/batches"] == 1
    assert metrics["llm/batch_prompt_tokens"] == metrics["llm/prompt_tokens"] > 6 * 50
    assert metrics["llm/batch_completion_tokens"] == metrics["llm/completion_tokens"] > 0
    assert "llm/sync_fallbacks" not in metrics

    # the same chunk again with the same state (a retried step): downloaded, not paid again
    again = asyncio.run(deepseek_r1_distrill_llama_70b(items(batch_stack, 6, state=state)))
    assert again == first
    assert len(batch_stack.batches()) == before + 1
    assert "re-attached to batch" in caplog.text
    assert API_KEY not in caplog.text
    assert API_KEY.encode() not in pickle.dumps(state.values)


@pytest.mark.parametrize(("mode", "sla"), [("auto", "6h"), ("never", "24h")])
def test_other_tiers_and_batch_never_answer_synchronously(batch_stack, mode, sla):
    before = len(batch_stack.batches())
    metrics: dict[str, float] = {}
    chunk = items(batch_stack, 2, sla=sla, metrics=metrics, batch=mode)
    assert_valid(asyncio.run(deepseek_r1_distrill_llama_70b(chunk)), chunk[0].config.output_schema)
    assert len(batch_stack.batches()) == before
    assert "llm/batches" not in metrics and "llm/sync_fallbacks" not in metrics


def test_a_deadline_too_near_for_a_batch_answers_synchronously_and_counts_it(batch_stack, caplog):
    caplog.set_level(logging.INFO, LOG.name)
    before = len(batch_stack.batches())
    metrics: dict[str, float] = {}
    deadline = datetime.now(UTC) + timedelta(minutes=80)  # < 1h reserve + 30 min least wait
    chunk = items(batch_stack, 3, metrics=metrics, deadline=deadline, batch="always", sla="6h")
    assert_valid(asyncio.run(deepseek_r1_distrill_llama_70b(chunk)), chunk[0].config.output_schema)
    assert len(batch_stack.batches()) == before
    assert metrics["llm/sync_fallbacks"] == 3 and "llm/batches" not in metrics
    assert "3 prompt(s) answered synchronously: the deadline" in caplog.text


def test_a_batch_still_running_at_the_reserve_is_cancelled_and_the_rest_goes_synchronous(
    batch_stack,
):
    """Deadline = now + reserve + 3 s: the batch may wait 3 s; llama-server is frozen, so the
    batch is still in progress then; the chunk cancels it and asks synchronously (once the
    test thaws llama-server)."""
    metrics: dict[str, float] = {}
    reserve = 3600
    deadline = datetime.now(UTC) + timedelta(seconds=reserve + 3)
    chunk = items(
        batch_stack, 3, metrics=metrics, deadline=deadline,
        **{"batch-reserve-seconds": reserve, "batch-min-wait-seconds": 1},
    )  # fmt: skip
    before = {b["id"] for b in batch_stack.batches()}
    outcome: list = []
    with batch_stack.inference_paused():
        worker = threading.Thread(
            target=lambda: outcome.append(asyncio.run(deepseek_r1_distrill_llama_70b(chunk)))
        )
        worker.start()
        while not [
            b for b in batch_stack.batches() if b["id"] not in before and b["status"] == "cancelled"
        ]:
            assert worker.is_alive()
            time.sleep(0.1)
    worker.join(timeout=120)
    (new,) = [b for b in batch_stack.batches() if b["id"] not in before]
    assert new["status"] == "cancelled"
    assert_valid(outcome[0], chunk[0].config.output_schema)
    assert metrics["llm/batches"] == 1 and metrics["llm/sync_fallbacks"] == 3
    assert "llm/batch_prompt_tokens" not in metrics


def test_an_answer_the_schema_refuses_is_asked_again_in_a_new_batch(batch_stack, caplog):
    """Unconstrained text (``response_format`` overridden to text) from the random model is
    not JSON: InvalidAnswerError. The retry round (the runtime calls the satellite again with
    the same step state) creates a new batch rather than download the refused answer again."""
    caplog.set_level(logging.INFO, LOG.name)
    before = len(batch_stack.batches())
    state, metrics = MemoryState(), {}
    options = {"max-tokens": 8, "engine-options": {"response_format": {"type": "text"}}}
    for _ in range(2):
        chunk = items(batch_stack, 2, state=state, metrics=metrics, **options)
        results_ = asyncio.run(deepseek_r1_distrill_llama_70b(chunk))
        assert [type(r).__name__ for r in results_] == ["InvalidAnswerError"] * 2
    assert len(batch_stack.batches()) == before + 2
    assert metrics["llm/batches"] == 2
    assert "re-attached" not in caplog.text

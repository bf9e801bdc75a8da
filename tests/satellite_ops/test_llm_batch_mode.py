"""Batch mode never throws away paid answers nor pays twice, against a scripted Batch API
server on 127.0.0.1 (fake_batch_api.py): malformed rows, batches the provider ends early,
refused or dropped polls, a cancel the server refuses, and the deadline."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fake_batch_api import COMPLETION_TOKENS, MALFORMED, PROMPT_TOKENS, Script, fake_batch_api

from satellite_ops import BatchItem, FatalError, RetryableError, SatelliteContext
from satellite_ops.context import BatchPolicy, MemoryState
from satellite_ops.helpers.batch_api import POLL_FAILURES, BatchUnreachable
from satellite_ops.helpers.batch_api_mode import MAX_BATCHES_PER_CALL
from satellite_ops.satellites.llm import LlmConfig, llm
from satellite_ops.testing import CapturedLog

pytestmark = pytest.mark.integration

API_KEY = "sk-fake-batch-0123456789"
POLICY = BatchPolicy(
    tiers=frozenset({"24h"}), reserve_seconds=3600, poll_seconds=0.01, poll_max_seconds=0.05
)


@pytest.fixture
def api():
    with fake_batch_api() as server:
        yield server


class Chunk:
    """``count`` items of one step (shared state, metrics and log), asked again by ``ask``."""

    def __init__(self, api, count: int, *, deadline: datetime | None = None) -> None:
        self.log = logging.getLogger(f"test.batch.{id(self)}")
        self.captured = CapturedLog()
        self.log.addHandler(self.captured)
        self.log.setLevel(logging.DEBUG)
        self.state, self.metrics = MemoryState(), {}
        self.deadline = deadline or datetime.now(UTC) + timedelta(hours=24)
        self.config = LlmConfig.model_validate(
            {
                "model": "fake",
                "engine": "openai",
                "base-url": api.url,
                "api-key": API_KEY,
                "batch": "always",
                "output-format": "text",
            }  # fmt: skip
        )
        self.prompts = {f"item-{i}": f"prompt {i}" for i in range(count)}

    def ask(self, ids: list[str] | None = None) -> dict[str, object]:
        ids = ids or list(self.prompts)
        context = dict(log=self.log, cluster="test/fake", run_id="run-1", satellite="llm",
                       metrics=self.metrics, deadline=self.deadline, sla="24h",
                       state=self.state, batch=POLICY)  # fmt: skip
        items = [
            BatchItem(
                self.config, {"prompt": self.prompts[i]}, SatelliteContext(item_id=i, **context)
            )
            for i in ids
        ]
        return dict(zip(ids, asyncio.run(llm(items)), strict=True))

    def warnings(self) -> str:
        return "\n".join(self.captured.at("WARNING"))

    def records(self) -> list:
        return [r for value in self.state._values.values() for r in value]


def answered(outcome, prompt: str) -> bool:
    return outcome == [{"text": f"answer to: {prompt}"}]


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_row_fails_only_its_item_and_the_others_keep_answers_and_tokens(api, kind):
    api.scripts = [Script(malformed={1: kind})]
    chunk = Chunk(api, 4)
    results = chunk.ask()
    bad = results.pop("item-1")
    assert isinstance(bad, RetryableError), bad
    assert all(answered(results[i], chunk.prompts[i]) for i in results), results
    assert chunk.metrics["llm/batch_prompt_tokens"] == 3 * PROMPT_TOKENS
    assert chunk.metrics["llm/completion_tokens"] == 3 * COMPLETION_TOKENS
    assert chunk.metrics["llm/batches"] == 1 and chunk.metrics["llm/sync_fallbacks"] == 0
    assert api.sync_prompts == [] and chunk.records() == []  # the retry asks item-1 again
    assert chunk.ask(["item-1"]) == {"item-1": [{"text": "answer to: prompt 1"}]}
    assert [len(b.rows) for b in api.ordered()] == [4, 1]


@pytest.mark.parametrize(
    "script",
    [
        Script(end="expired", answered=2),
        Script(end="cancelled", answered=2),
        Script(end="failed", errors=({"code": "server_error", "message": "try later"},)),
    ],
    ids=lambda s: s.end,
)
def test_a_batch_the_provider_ends_early_sends_the_rest_into_a_smaller_batch(api, script):
    api.scripts = [script]
    chunk = Chunk(api, 5)
    results = chunk.ask()
    assert all(answered(results[i], p) for i, p in chunk.prompts.items()), results
    first, second = api.ordered()
    assert len(second.rows) == 5 - script.answered
    assert sorted(api.billed()) == sorted(chunk.prompts.values())  # each paid once
    assert api.sync_prompts == [] and api.cancels == []
    assert chunk.metrics["llm/sync_fallbacks"] == 0 and chunk.metrics["llm/batches"] == 2
    assert chunk.metrics["llm/abandoned_batches"] == 1
    assert chunk.metrics[f"llm/abandoned_batch/{first.id}"] == 5 - script.answered
    assert chunk.metrics["llm/batch_prompt_tokens"] == 5 * PROMPT_TOKENS
    warnings = chunk.warnings()
    assert f"batch {first.id} abandoned, ended {script.end} on the server" in warnings
    assert "go into a new, smaller batch" in warnings and "synchronously" not in warnings
    assert chunk.records() == []


def test_a_batch_whose_file_is_refused_fails_its_items_without_a_new_batch(api):
    api.scripts = [Script(end="failed", errors=({"code": "model_not_found", "message": "no"},))]
    chunk = Chunk(api, 2)
    results = chunk.ask()
    assert all(isinstance(r, FatalError) and "model_not_found" in str(r) for r in results.values())
    assert len(api.ordered()) == 1 and api.sync_prompts == []


def test_batches_that_keep_ending_early_retry_later_and_only_the_deadline_goes_synchronous(api):
    """Every batch expires after answering one row: a call makes MAX_BATCHES_PER_CALL of them,
    then the items retry. The retry, now inside the deadline's reserve, submits nothing: the
    rest is answered synchronously and the log says it is the deadline."""
    api.scripts = [Script(end="expired", answered=1) for _ in range(MAX_BATCHES_PER_CALL)]
    chunk = Chunk(api, 5)
    results = chunk.ask()
    done = [i for i, r in results.items() if isinstance(r, list)]
    assert len(done) == MAX_BATCHES_PER_CALL == len(api.ordered())
    assert [len(b.rows) for b in api.ordered()] == [5, 4, 3]
    left = [i for i in chunk.prompts if i not in done]
    assert all("batches in a row ended" in str(results[i]) for i in left)
    assert "synchronously" not in chunk.warnings() and api.sync_prompts == []
    chunk.deadline = datetime.now(UTC) + timedelta(seconds=POLICY.reserve_seconds - 60)
    retried = chunk.ask(left)
    assert all(answered(retried[i], chunk.prompts[i]) for i in left)
    assert len(api.ordered()) == MAX_BATCHES_PER_CALL  # no batch inside the reserve
    assert sorted(api.billed()) == sorted(chunk.prompts.values())
    assert f"{len(left)} item(s) answered synchronously" in chunk.warnings()
    assert "leaves too little time" in chunk.warnings()


@pytest.mark.parametrize(
    "failures", [[403], [404], [429], [500], ["drop"], [503, 404, "drop", 502]], ids=str
)
def test_a_refused_or_dropped_poll_is_retried_and_the_batch_followed_to_its_end(api, failures):
    api.scripts = [Script(polls=2)]
    api.fail_polls = list(failures)
    chunk = Chunk(api, 3)
    results = chunk.ask()
    assert all(answered(results[i], p) for i, p in chunk.prompts.items()), results
    assert len(api.ordered()) == 1 and api.cancels == [] and api.sync_prompts == []
    assert [got for _, got in api.polls][: len(failures)] == failures
    assert sorted(api.billed()) == sorted(chunk.prompts.values())
    assert "poll failed, trying again" in chunk.warnings()
    assert (
        "llm/abandoned_batches" not in chunk.metrics or not chunk.metrics["llm/abandoned_batches"]
    )


def test_a_batch_that_cannot_be_polled_keeps_its_items_and_their_retry_follows_it(api):
    api.fail_polls = [500] * POLL_FAILURES
    chunk = Chunk(api, 3)
    results = chunk.ask()
    (batch,) = api.ordered()
    assert all(isinstance(r, BatchUnreachable) and batch.id in str(r) for r in results.values())
    assert api.sync_prompts == [] and api.cancels == []
    assert [r["batch"] for r in chunk.records()] == [batch.id]  # kept for the retry
    results = chunk.ask()  # the runtime's retry
    assert all(answered(results[i], p) for i, p in chunk.prompts.items()), results
    assert len(api.ordered()) == 1 and sorted(api.billed()) == sorted(chunk.prompts.values())
    assert chunk.records() == []


def test_at_the_deadline_the_batch_is_cancelled_then_only_its_unanswered_rows_go_synchronous(
    api,
):
    never = threading.Event()
    api.scripts = [Script(hold=never, answered=1)]
    chunk = Chunk(api, 3, deadline=datetime.now(UTC) + timedelta(seconds=3601))
    results = chunk.ask()
    assert all(answered(results[i], p) for i, p in chunk.prompts.items()), results
    (batch,) = api.ordered()
    assert api.cancels == [batch.id] and batch.status == "cancelled"
    assert len(api.sync_prompts) == 2 and sorted(api.billed()) == sorted(chunk.prompts.values())
    assert chunk.metrics[f"llm/abandoned_batch/{batch.id}"] == 2
    assert chunk.metrics["llm/sync_fallbacks"] == 2
    warnings = chunk.warnings()
    assert f"batch {batch.id} abandoned, cancelled at the deadline" in warnings
    assert "2 item(s) answered synchronously" in warnings


def test_a_live_batch_whose_cancel_is_refused_is_never_answered_synchronously(api):
    never = threading.Event()
    api.scripts = [Script(hold=never)]
    api.fail_cancels = [500] * POLL_FAILURES
    chunk = Chunk(api, 2, deadline=datetime.now(UTC) + timedelta(seconds=3601))
    results = chunk.ask()
    (batch,) = api.ordered()
    assert all(isinstance(r, BatchUnreachable) for r in results.values()), results
    assert api.sync_prompts == [] and batch.status == "in_progress"
    assert [r["batch"] for r in chunk.records()] == [batch.id]
    assert "asked nowhere else" in chunk.warnings()
    assert API_KEY not in repr(chunk.state._values) + "\n".join(chunk.captured.messages)

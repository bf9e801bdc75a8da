"""The runtime reads what resolve decided and recomputes none of it: a hand-made execution plan
and deployment, with values no tier, default or setting has, show up in what a step does (the
deadline and Batch API policy a satellite sees, its retries and timeout, the log sinks' queue and
drain time). Also: one Retry-After rule for items and log sinks, item ids that depend only on
the secrets passed in, and one S3 client configuration for satellites, checkpoints and triggers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from dagster import instance_for_test
from pydantic import BaseModel

from clusters import cluster, dump, satellite_entry
from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan
from exosphere_dagster.resolve.resolve import resolve
from exosphere_dagster.resolve.settings import Settings
from exosphere_dagster.resolve.tags import TRIGGER_TIME_TAG
from exosphere_dagster.runtime import arrivals, log_delivery
from exosphere_dagster.runtime.checkpoint_s3 import S3CheckpointStore
from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
from exosphere_dagster.runtime.items import ChunkReport, ItemEvent, child_id, seed_items
from exosphere_dagster.runtime.log_delivery import SinkWorker
from exosphere_dagster.runtime.logs import item_prefix, split_item_prefix
from exosphere_dagster.runtime.secrets import redaction_values
from exosphere_dagster.runtime.step_runner import StepRunner
from satellite_ops.context import BatchPolicy, SatelliteContext
from satellite_ops.errors import RetryableError
from satellite_ops.helpers.s3_client import INFRASTRUCTURE_ATTEMPTS, TRANSFER_CONFIG, s3_client
from satellite_ops.registry import SatelliteRegistry, define_satellite
from yaml_loader import load_text, plan
from yaml_loader.ir import RetrySettings

TRIGGERED = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
SEEN: list[SatelliteContext] = []


class Cfg(BaseModel):
    mode: str = "ok"


def probe(config: Cfg, input: dict, context: SatelliteContext) -> list[dict]:
    """Records what the step handed it; fails (retryably) when told to."""
    SEEN.append(context)
    if config.mode == "fail":
        raise RetryableError("still down")
    return [{"name": f"out-{input.get('n', 0)}"}]


async def slow(config: Cfg, input: dict) -> list[dict]:
    await asyncio.sleep(30)
    return []


def sink(config: Cfg, input: dict) -> list[dict]:
    return []


REGISTRY = SatelliteRegistry(
    [
        define_satellite("satellite/test/probe", probe, Cfg),
        define_satellite("satellite/test/slow", slow, Cfg),
        define_satellite("satellite/test/sink", sink, Cfg),
    ]
)


def execution(deployment: Deployment) -> ExecutionPlan:
    """A 6h cluster resolved, then changed by hand to values no tier or default has."""
    data = cluster(
        "t/reads-plan",
        [
            satellite_entry("satellite/test/probe", "probe", {"mode": "ok"}),
            satellite_entry("satellite/test/probe", "flaky", {"mode": "fail"}),
            satellite_entry("satellite/test/slow", "slow"),
        ],
        logs=[satellite_entry("satellite/test/sink", "sink")],
        retries=5,
        delay=30,
    )
    resolved = resolve(plan(load_text(dump(data)), REGISTRY), deployment, REGISTRY)
    nodes = dict(resolved.nodes)
    nodes["flaky"] = replace(nodes["flaky"], retry=RetrySettings(2, 0.0))
    nodes["slow"] = replace(nodes["slow"], timeout_seconds=0.05, retry=RetrySettings(0, 0.0))
    return replace(
        resolved,
        run=replace(resolved.run, tier="12h", sla_seconds=4321),
        nodes=MappingProxyType(nodes),
        batch_api=BatchPolicy(frozenset({"12h"}), 77.0, 0.25, 9.0),
    )


@pytest.fixture
def runner(tmp_path) -> StepRunner:
    settings = Settings(
        checkpoint_dir=tmp_path / "ckpt",
        checkpoint_retention_days=0,
        log_sink_queue=7,
        log_sink_drain_seconds=1.5,
    )
    deployment = Deployment(settings=settings)
    run = SimpleNamespace(
        run_id="run-1", root_run_id=None, tags={TRIGGER_TIME_TAG: "2026-03-28T09:00:00+00:00"}
    )
    context = SimpleNamespace(run=run, instance=None, log=logging.getLogger("test.reads-plan"))
    SEEN.clear()
    return StepRunner(context, execution(deployment), deployment)


def test_a_step_hands_satellites_the_plans_deadline_tier_and_batch_policy(runner):
    items = seed_items([{"n": 1}])
    children, report = runner.run(runner.plan.node("probe"), "c0", items)
    assert report.succeeded == 1 and [c.value for c in children] == [{"name": "out-1"}]
    (seen,) = SEEN
    assert seen.deadline == TRIGGERED + timedelta(seconds=4321)  # no tier lasts 4321 s
    assert seen.sla == "12h"  # the plan's tier, not the file's 6h
    assert seen.batch == BatchPolicy(frozenset({"12h"}), 77.0, 0.25, 9.0)
    assert runner.shared["run"]["deadline"] == seen.deadline.isoformat()  # ${{ run.deadline }}


def test_a_step_retries_as_the_plan_says_and_records_each_attempt(runner):
    _, report = runner.run(runner.plan.node("flaky"), "c0", seed_items([{"n": 1}]))
    (failed,) = report.failed
    assert failed.attempts == 3  # the plan's 2 retries, not the file's 5
    assert [(e.outcome, e.attempt, e.attempts) for e in report.events] == [
        ("retry", 1, 3),
        ("retry", 2, 3),
        ("attempt-failed", 3, 3),
        ("failed", 3, 3),  # the plan routes no failure of `flaky` to a failure branch
    ]
    assert {e.item for e in report.events} == {failed.item.id}
    assert report.events[-1].error == "RetryableError: still down"


def test_a_step_times_out_as_the_plan_says(runner):
    _, report = runner.run(runner.plan.node("slow"), "c0", seed_items([{"n": 1}]))
    assert report.failed[0].error == "timed out after 0.05s"  # the file sets no timeout


def test_log_sinks_queue_and_drain_as_the_deployment_says(runner):
    forwarder = runner.forwarder
    assert (forwarder.queue_size, forwarder.drain_seconds) == (7, 1.5)
    for n in range(10):  # fewer than one send's worth: all wait in the queue
        forwarder.emit("info", "probe", None, f"line {n}")
    (stats,) = forwarder.stats
    assert stats.queue_full == 3  # a queue of 7, not the default 20,000


# -- one Retry-After rule ---------------------------------------------------------------------
CASES = [  # (retry settings, Retry-After asked, the wait)
    (RetrySettings(3, 2.0), 7.5, 7.5),  # longer than the backoff: the ask wins
    (RetrySettings(3, 2.0), 0.5, 2.0),  # shorter: the backoff wins
    (RetrySettings(3, 2.0, max_delay=5.0), 60.0, 5.0),  # capped at max_delay
    (RetrySettings(3, 2.0), -1.0, 2.0),  # nonsense is ignored
    (RetrySettings(3, 2.0), None, 2.0),
]


def _item_wait(retry: RetrySettings, asked: float | None) -> float:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    def once(config: Cfg, input: dict) -> list[dict]:
        if not waits:
            raise RetryableError("busy", retry_after=asked)
        return []

    definition = define_satellite("satellite/test/once", once, Cfg)
    node = replace(execution_node(), retry=retry)
    job = ChunkJob(node, definition, {}, logging.getLogger("test.wait"), sleep=sleep)
    _, report = run_chunk(job, seed_items([{}]))
    assert report.succeeded == 1
    return waits[0]


class _Clock:
    """time for log_delivery: sleeping moves the clock, and is recorded."""

    def __init__(self) -> None:
        self.now, self.slept, self.lock = 1000.0, [], threading.Lock()

    def monotonic(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)
            self.now += seconds


def _sink_wait(retry: RetrySettings, asked: float | None, monkeypatch) -> float:
    clock = _Clock()
    monkeypatch.setattr(log_delivery, "time", clock)
    sent: list[int] = []

    def send(records: list[dict[str, Any]]) -> None:
        sent.append(len(records))
        if len(sent) == 1:
            raise RetryableError("throttled", retry_after=asked)

    worker = SinkWorker("sink", send, retry, records_per_send=10)
    worker.put({"message": "hello"})
    assert worker.drain(3600.0)
    assert sent == [1, 1]
    return clock.slept[0]


@pytest.mark.parametrize(("retry", "asked", "wait"), CASES)
def test_items_and_log_sinks_wait_the_same_for_a_retry_after(retry, asked, wait, monkeypatch):
    assert retry.wait_for(1, asked) == wait
    assert _item_wait(retry, asked) == wait
    assert _sink_wait(retry, asked, monkeypatch) == wait


def execution_node():
    data = cluster("t/node", [satellite_entry("satellite/test/probe", "probe")])
    return plan(load_text(dump(data)), REGISTRY).node("probe")


# -- item ids ----------------------------------------------------------------------------------
def test_item_ids_depend_on_the_secrets_passed_not_on_what_the_process_resolved():
    obj = {"name": "quartz-wombat-7.pdf"}
    before = child_id("run", "input", 0, obj)
    redaction_values({"OTHER_RUN_TOKEN": "quartz-wombat-7"})  # another run, same process
    assert child_id("run", "input", 0, obj) == before
    assert before.startswith("quartz-wombat-7.pdf~")
    hidden = child_id("run", "input", 0, obj, secrets=("quartz-wombat-7",))
    assert "quartz" not in hidden and hidden.split("~")[1] == before.split("~")[1]
    (seed,) = seed_items([obj])
    assert seed.child("probe", 0, obj).id == seed.child("probe", 0, obj, ()).id


def test_a_steps_children_are_named_after_the_runs_secrets_only():
    redaction_values({"ELSEWHERE": "amber-falcon-9"})
    definition = define_satellite(
        "satellite/test/echo", lambda config, input: [{"name": "amber-falcon-9.txt"}], Cfg
    )
    job = ChunkJob(execution_node(), definition, {}, logging.getLogger("test.ids"))
    (child,), _ = run_chunk(job, seed_items([{}]))
    assert child.id.startswith("amber-falcon-9.txt~")
    job = replace(job, secret_values=("amber-falcon-9",), events=[])
    (child,), _ = run_chunk(job, seed_items([{}]))
    assert "amber" not in child.id


# -- structured item records -----------------------------------------------------------------
def test_item_events_travel_as_json_metadata_and_come_back_whole():
    events = [ItemEvent(f"i{n}~abc", "sat", "retry", 1, 3, "RetryableError: x") for n in range(5)]
    value = ChunkReport("sat", events=events).events_metadata(limit=3)
    assert value["more"] == 2
    assert [ItemEvent.from_dict(d) for d in value["events"]] == events[:3]


def test_a_runs_report_carries_its_item_events_as_json(tmp_path, http_recorder):
    """What the cluster API reads: the report output's ``item_events``, from a real run."""
    http_recorder.reset(default=(503, {}, "down"))
    hook = satellite_entry(
        "satellite/exospherehost/call-webhook", "hook", {"url": f"{http_recorder.url}/hook"}
    )
    path = tmp_path / "events.yml"
    path.write_text(dump(cluster("t/events", [hook], retries=1, delay=0)))
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = run_cluster_file(path, [{"name": "a.pdf"}], instance=instance)
    assert not result.success
    (output,) = [
        e
        for e in result.all_events
        if e.is_successful_output
        and e.event_specific_data.step_output_handle.output_name == "report"
    ]
    value = output.event_specific_data.metadata["item_events"].value
    events = [ItemEvent.from_dict(d) for d in value["events"]]
    assert [(e.outcome, e.attempt, e.attempts) for e in events] == [
        ("retry", 1, 2),
        ("attempt-failed", 2, 2),
        ("failed", 2, 2),
    ]
    assert {e.item for e in events} == {child_id("run", "input", 0, {"name": "a.pdf"})}
    assert all("answered 503" in e.error for e in events) and value["more"] == 0


def test_item_prefixes_split_back_without_a_regex_of_the_readers_own():
    line = item_prefix("a.pdf~0123456789ab") + "parse: attempt 2/3 failed: boom"
    assert split_item_prefix(line) == ("a.pdf~0123456789ab", "parse: attempt 2/3 failed: boom")
    assert split_item_prefix("parse: 3 in, 3 succeeded") == (None, "parse: 3 in, 3 succeeded")
    assert split_item_prefix("[item has space] x") == (None, "[item has space] x")


# -- one S3 client factory --------------------------------------------------------------------
def test_checkpoints_triggers_and_satellites_share_one_s3_client_configuration(
    moto_server, s3_bucket, monkeypatch
):
    satellite = s3_client(endpoint_url=moto_server)
    store = S3CheckpointStore.from_url(f"s3://{s3_bucket}/ckpt", moto_server)
    assert store.client is s3_client(endpoint_url=moto_server, attempts=INFRASTRUCTURE_ATTEMPTS)
    asked: list[dict[str, Any]] = []

    def recording(**kwargs: Any) -> Any:
        asked.append(kwargs)
        return s3_client(**kwargs)

    monkeypatch.setattr(arrivals, "s3_client", recording)
    trigger = {"s3": {"bucket": s3_bucket, "prefix": "in/", "endpoint-url": moto_server}}
    data = cluster("t/s3", [satellite_entry("satellite/test/probe", "probe")], trigger=trigger)
    assert list(arrivals.list_s3(plan(load_text(dump(data)), REGISTRY))) == []
    assert asked == [{"endpoint_url": moto_server, "attempts": INFRASTRUCTURE_ATTEMPTS}]
    mine, theirs = satellite.meta.config, store.client.meta.config
    assert mine.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert theirs.retries == {"total_max_attempts": INFRASTRUCTURE_ATTEMPTS, "mode": "standard"}
    for name in ("connect_timeout", "read_timeout", "max_pool_connections", "user_agent_extra"):
        assert getattr(mine, name) == getattr(theirs, name), name
    assert store.client.download_file.keywords == {"Config": TRANSFER_CONFIG}

"""One visible retry policy: the runtime retries an item, a client call makes one attempt.
Real satellites against the recording HTTP server on 127.0.0.1 and moto; the runtime's sleep
is injected so Retry-After is asserted as the wait asked for, not measured."""

from __future__ import annotations

import logging

import pytest

from exosphere_dagster.cli import render_plan
from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
from exosphere_dagster.runtime.items import seed_items
from satellite_ops.registry import default_registry
from yaml_loader import load_text, plan

pytestmark = pytest.mark.integration


def one_node(uses: str, config: str, retries: int, extra: str = ""):
    text = f"""\
version: 0.0.1b
cluster:
  identifier: test/one-policy
  sla: 6h
  trigger: api-call
  retries: {retries}
  delay: 2
  satellites:
    - uses: {uses}
      identifier: sat
      config:
{config}{extra}"""
    registry = default_registry()
    cluster = plan(load_text(text), registry)
    return cluster, cluster.nodes[0], registry.get(uses)


def run(node, definition):
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    job = ChunkJob(node, definition, {}, logging.getLogger("t"), sleep=sleep)
    _, report = run_chunk(job, seed_items([{}]))
    return report, waits


def test_a_failing_webhook_is_called_retries_plus_one_times(http_recorder):
    http_recorder.reset(default=(503, {}, "down"))
    _, node, definition = one_node(
        "satellite/exospherehost/call-webhook", f"        url: {http_recorder.url}/hook\n", 2
    )
    report, waits = run(node, definition)
    assert len(report.failed) == 1 and report.failed[0].attempts == 3
    assert len(http_recorder.requests) == 3  # not 3 x an inner retry count
    assert waits == [2.0, 4.0]  # the runtime's backoff: delay 2s, x2


def test_retry_after_is_honoured_by_the_runtime(http_recorder):
    http_recorder.script([(429, {"Retry-After": "17"}, "slow down")])
    _, node, definition = one_node(
        "satellite/exospherehost/call-webhook", f"        url: {http_recorder.url}/hook\n", 2
    )
    report, waits = run(node, definition)
    assert report.succeeded == 1 and len(http_recorder.requests) == 2
    assert waits == [17.0]


def test_pagerduty_makes_one_request_per_attempt(http_recorder, monkeypatch):
    http_recorder.reset(default=(500, {}, "oops"))
    config = (
        "        pagerduty-api-key: R0123456789abcdef0123456789abcdef\n"
        f"        endpoint: {http_recorder.url}/v2/enqueue\n"
    )
    extra = "      input:\n        message: hi\n"
    _, node, definition = one_node("satellite/exospherehost/send-pagerduty-alert", config, 1, extra)
    report, waits = run(node, definition)
    assert len(report.failed) == 1
    assert len(http_recorder.requests) == 2 and waits == [2.0]


def test_plan_prints_the_effective_attempts():
    cluster, _, _ = one_node(
        "satellite/exospherehost/call-webhook", "        url: https://e.com\n", 3
    )
    text = render_plan(cluster)
    assert "attempts: 4 (retries 3), backoff 2s x2 up to 600s, honours Retry-After" in text

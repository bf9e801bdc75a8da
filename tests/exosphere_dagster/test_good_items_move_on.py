"""One bad item no longer holds the rest of its chunk, and every run is counted (issue 22).

A cluster ``items -> record -> deliver`` with no failure branch, where ``record`` fails for some
items and ``deliver`` POSTs each item to a local webhook receiver (the real ``call-webhook``
satellite and HTTP client). The first run delivers every good item and goes red, naming the
failed ones; its summary still counts the run. "Re-execute from failure" (what the UI button
calls) then delivers the failed items alone: nothing twice, nothing skipped.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from dagster import AssetKey, DagsterRunStatus

from clusters import cluster, fan_out, record, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import rerun, run_cluster_file
from exosphere_dagster.resolve.cost.prices import COST_TAG
from exosphere_dagster.translate.summary import COST_NOTE_TAG

pytestmark = pytest.mark.integration


LABEL = "${{ satellites.record.output.label }}"


def deliver(url: str, label: str = LABEL) -> dict:
    config = {"url": url, "body": {"label": label}}
    return satellite_entry("satellite/exospherehost/call-webhook", "deliver", config)


def delivery_cluster(tmp_path, url: str, count: int, failing: list[str], cause, **more) -> str:
    satellites = [
        fan_out("items", count=count, prefix="item-"),
        record(
            "record",
            "${{ satellites.items.output.label }}",
            tmp_path,
            fail_for=failing,
            **({"fail_while": cause} if cause else {}),
        ),
        *more.pop("middle", []),
        deliver(url, more.pop("label", LABEL)),
    ]
    body = cluster("test/deliveries", satellites, retries=0, **more)
    return write_cluster(tmp_path, "deliveries.yml", body)


def delivered(recorder) -> Counter:
    return Counter(r.json["label"] for r in recorder.requests if r.method == "POST")


def step_failures(result) -> dict:
    return {
        e.step_key: e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    }


def summary_metadata(result) -> dict:
    """The summary step's metadata: on its output, or on its failure in a failed run."""
    (meta,) = [
        e.event_specific_data.user_failure_data.metadata
        if e.event_type_value == "STEP_FAILURE"
        else e.event_specific_data.metadata
        for e in result.all_events
        if e.step_key == "exosphere__summary"
        and e.event_type_value in ("STEP_OUTPUT", "STEP_FAILURE")
    ]
    return meta


@pytest.mark.parametrize("multiprocess", [False, True], ids=["in-process", "multiprocess"])
def test_good_items_are_delivered_in_the_first_run_and_the_failed_one_after_from_failure(
    tmp_path, sqlite_instance, http_recorder, multiprocess
):
    cause = tmp_path / "cause"
    cause.write_text("broken")
    path = delivery_cluster(tmp_path, f"{http_recorder.url}/hook", 3, ["item-1"], cause)

    first = run_cluster_file(path, instance=sqlite_instance, multiprocess=multiprocess)
    assert not first.success
    assert delivered(http_recorder) == Counter(["item-0", "item-2"])  # the good items moved on
    failures = step_failures(first)
    assert set(failures) == {"record[c00000]", "exosphere__summary"}
    assert (
        "item-1~" in failures["record[c00000]"]
        and "cannot process item-1" in failures["record[c00000]"]
    )
    assert "record: 1 item(s) failed with no failure branch" in failures["exosphere__summary"]
    run = sqlite_instance.get_run_by_id(first.run_id)
    assert run.status == DagsterRunStatus.FAILURE
    counts = [run.tags[f"exosphere/{k}"] for k in ("items", "succeeded", "routed", "failed")]
    assert counts == ["3", "2", "0", "1"]
    assert float(run.tags[COST_TAG]) > 0  # a failed run is priced too
    (materialized,) = sqlite_instance.fetch_materializations(
        AssetKey(["test__deliveries", "record"]), limit=10
    ).records
    meta = materialized.asset_materialization.metadata
    assert (meta["succeeded"].value, meta["failed"].value) == (2, 1)  # the Catalog plots failures

    cause.unlink()
    again = rerun(first.run_id, instance=sqlite_instance, from_failure=True)
    assert again.success
    assert delivered(http_recorder) == Counter(["item-0", "item-1", "item-2"])  # none twice
    tags = sqlite_instance.get_run_by_id(again.run_id).tags
    counts = [tags[f"exosphere/{k}"] for k in ("items", "succeeded", "failed")]
    assert counts == ["3", "3", "0"]
    started = {e.step_key for e in again.all_events if e.event_type_value == "STEP_START"}
    assert started == {"record[c00000]", "deliver[c00000]", "exosphere__summary"}


def test_items_after_a_rechunk_keep_their_chunks_across_the_re_execution(
    tmp_path, sqlite_instance, http_recorder
):
    """``pages`` fans out after ``record``: its gathering step cuts 78 items into chunks of 20
    in the first run and 80 in the re-execution. The re-execution keeps the 78 in the chunks
    whose checkpoints hold them and puts the 2 new ones in a chunk of their own, so no item
    moves to a chunk that would deliver it again."""
    cause = tmp_path / "cause"
    cause.write_text("broken")
    pages = fan_out("pages", count=2, prefix="page-")
    label = LABEL + "/${{ satellites.pages.output.label }}"
    path = delivery_cluster(
        tmp_path, http_recorder.url, 40, ["item-0"], cause, middle=[pages], label=label
    )
    first = run_cluster_file(path, instance=sqlite_instance)
    assert not first.success
    assert sum(delivered(http_recorder).values()) == 78

    cause.unlink()
    again = rerun(first.run_id, instance=sqlite_instance, from_failure=True)
    assert again.success
    calls = Counter(r.json["label"] for r in http_recorder.requests)
    assert sum(calls.values()) == 80 and set(calls.values()) == {1}
    logs = [r.user_message for r in sqlite_instance.all_logs(again.run_id)]
    assert "80 item(s) in 5 chunk(s) of up to 20" in logs  # the 78 kept, the 2 new in c00004


def test_a_failed_run_and_its_re_execution_each_record_their_own_spend(
    tmp_path, sqlite_instance, http_recorder
):
    cause = tmp_path / "cause"
    cause.write_text("broken")
    path = delivery_cluster(tmp_path, http_recorder.url, 3, ["item-1"], cause)
    first = run_cluster_file(path, instance=sqlite_instance)
    cause.unlink()
    again = rerun(first.run_id, instance=sqlite_instance, from_failure=True)
    own = {}
    for result in (first, again):
        steps = [
            e.event_specific_data.metadata
            for e in result.all_events
            if e.event_type_value == "STEP_OUTPUT"
            and e.event_specific_data.step_output_handle.output_name == "report"
        ]
        own[result.run_id] = sum(m["compute/seconds"].value for m in steps)
    for result in (first, again):
        meta = summary_metadata(result)
        light = sum(
            (s.end_time or 0) - (s.start_time or 0)
            for s in sqlite_instance.get_run_step_stats(result.run_id)
            if s.step_key in ("exosphere__start", "items__rechunk", "exosphere__summary")
        )
        seconds = meta["compute/seconds"].value
        assert own[result.run_id] <= seconds <= own[result.run_id] + light + 0.5
    # the re-execution ran record and deliver for one chunk: its spend is not its parent's too
    assert own[again.run_id] < own[first.run_id] + 0.5


def test_a_run_whose_compute_has_no_price_says_so(
    tmp_path, sqlite_instance, http_recorder, monkeypatch
):
    prices = tmp_path / "prices.yaml"
    prices.write_text("source: only spot\npools:\n  spot: {cpu-hour: 0.01}\n")
    monkeypatch.setenv("EXOSPHERE_PRICES_FILE", str(prices))
    path = delivery_cluster(tmp_path, http_recorder.url, 2, [], None)  # 6h: on-demand pool
    result = run_cluster_file(path, instance=sqlite_instance)
    assert result.success
    tags = sqlite_instance.get_run_by_id(result.run_id).tags
    assert tags[COST_NOTE_TAG].startswith("incomplete: no price for node pool 'on-demand'")


@pytest.mark.slow
def test_a_thousand_items_with_thirty_failures_deliver_970_then_1000_none_twice(
    tmp_path, sqlite_instance, http_recorder
):
    cause = tmp_path / "cause"
    cause.write_text("broken")
    failing = [f"item-{i}" for i in random.Random(22).sample(range(1000), 30)]
    path = delivery_cluster(tmp_path, http_recorder.url, 1000, failing, cause)
    first = run_cluster_file(path, instance=sqlite_instance)
    assert not first.success
    calls = delivered(http_recorder)
    assert sum(calls.values()) == 970 and not set(failing) & set(calls)
    tags = sqlite_instance.get_run_by_id(first.run_id).tags
    assert (tags["exosphere/succeeded"], tags["exosphere/failed"]) == ("970", "30")

    cause.unlink()
    again = rerun(first.run_id, instance=sqlite_instance, from_failure=True)
    assert again.success
    calls = delivered(http_recorder)
    assert len(calls) == 1000 and set(calls.values()) == {1}  # 0 duplicates


def test_every_billed_token_lands_in_a_run(tmp_path, sqlite_instance, http_recorder):
    """Issue 19, section 4: a sync LLM chunk step goes red after 3 answers. The failed run
    records the 3 answers' tokens (its summary ran), the re-execution only the re-asked item's:
    together, every token the server billed."""
    usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    answer = {
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }
    http_recorder.reset(default=(200, {}, answer))
    http_recorder.script([(400, {}, {"error": {"message": "bad prompt"}})])  # one request fails
    config = {
        "model": "gpt-4o-mini",
        "engine": "openai",
        "base-url": f"{http_recorder.url}/v1",
        "output-format": "json",
        "batch": "never",
    }
    entry = satellite_entry("satellite/exospherehost/llm", "extract", config, retries=0)
    path = write_cluster(tmp_path, "llm.yml", cluster("test/llm-tokens", [entry]))
    prompts = [{"prompt": f"report {i}"} for i in range(4)]
    first = run_cluster_file(path, prompts, instance=sqlite_instance)
    assert not first.success
    again = rerun(first.run_id, instance=sqlite_instance, from_failure=True)
    assert again.success
    answered = sum(1 for r in http_recorder.requests if r.method == "POST") - 1
    assert answered == 4
    recorded = []
    for result in (first, again):
        tags = sqlite_instance.get_run_by_id(result.run_id).tags
        assert float(tags[COST_TAG]) > 0
        meta = summary_metadata(result)
        recorded.append(meta["llm/prompt_tokens"].value)
    assert recorded == [21, 7]  # 3 answers in the red run, 1 in its re-execution: 28 billed

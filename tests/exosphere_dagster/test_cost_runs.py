"""What a run costs, in real Dagster runs of an LLM cluster against a scripted OpenAI-compatible
server: every step records its compute, pool, tokens and cost; the summary adds them up into
the run's tag, its metadata and the satellite's materialization; a 6h run cuts the same prompts
into small batches on on-demand capacity, a 24h run sends one batch on spot capacity."""

from __future__ import annotations

import pytest
from dagster import AssetKey

from clusters import cluster, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.resolve.cost.prices import COST_TAG
from exosphere_dagster.resolve.placement import K8S_CONFIG_TAG
from exosphere_dagster.translate.ui import read_metadata

pytestmark = pytest.mark.integration

PRICES = """\
source: run test prices
pools:
  on-demand: {cpu-hour: 0.04, gpu-hour: 2.0}
  spot: {cpu-hour: 0.01, gpu-hour: 0.5}
models:
  - {engine: openai, model: gpt-4o-mini, sync: {input: 0.15, output: 0.60},
     batch: {input: 0.075, output: 0.30}}
"""
USAGE = {"prompt_tokens": 40, "completion_tokens": 25, "total_tokens": 65}
ANSWER = {
    "object": "chat.completion",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}
    ],
    "usage": USAGE,
}
PROMPTS = [{"prompt": f"report {i}"} for i in range(20)]


def llm_cluster(tmp_path, recorder, sla: str, model: str = "gpt-4o-mini"):
    config = {
        "model": model,
        "engine": "openai",
        "base-url": f"{recorder.url}/v1",
        "output-format": "json",
        "batch": "never",  # the recorder is no Batch API: every tier answers synchronously
    }
    entry = satellite_entry("satellite/exospherehost/llm", "extract", config, retries=0)
    return write_cluster(tmp_path, f"{sla}.yml", cluster(f"test/cost-{sla}", [entry], sla=sla))


def step_outputs(instance, run_id: str, op: str = "extract") -> list[dict]:
    """The metadata of ``op``'s report outputs, one per chunk step."""
    found = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.event_type_value != "STEP_OUTPUT":
            continue
        data = event.event_specific_data
        if event.step_key.startswith(op) and data.step_output_handle.output_name == "report":
            found.append(read_metadata(data.metadata))
    return found


def summary_metadata(instance, run_id: str) -> dict:
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if (
            event
            and event.event_type_value == "STEP_OUTPUT"
            and event.step_key.endswith("exosphere__summary")
        ):
            return read_metadata(event.event_specific_data.metadata)
    raise AssertionError("no summary output")


@pytest.fixture
def prices(tmp_path, monkeypatch):
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES)
    monkeypatch.setenv("EXOSPHERE_PRICES_FILE", str(path))
    return path


@pytest.mark.parametrize(("sla", "pool", "steps"), [("6h", "on-demand", 3), ("24h", "spot", 1)])
def test_a_run_records_what_each_step_and_the_run_cost(
    tmp_path, sqlite_instance, http_recorder, prices, sla, pool, steps
):
    http_recorder.reset(default=(200, {}, ANSWER))
    result = run_cluster_file(
        llm_cluster(tmp_path, http_recorder, sla), PROMPTS, instance=sqlite_instance
    )
    assert result.success
    outputs = step_outputs(sqlite_instance, result.run_id)
    assert len(outputs) == steps  # 20 prompts: batches of 8 on 6h (one worker), one on 24h
    for meta in outputs:
        assert meta["compute/pool"] == pool
        seconds = meta["compute/seconds"]  # rounded to 0.1 ms, as the others
        assert meta["compute/gpu_seconds"] == pytest.approx(seconds, abs=1e-3)
        assert meta["compute/cpu_seconds"] == pytest.approx(4 * seconds, abs=1e-3)
        tokens = (meta["llm/prompt_tokens"] * 0.15 + meta["llm/completion_tokens"] * 0.60) / 1e6
        assert meta["cost/tokens_usd"] == pytest.approx(tokens)
        assert meta["cost_usd"] == pytest.approx(meta["cost/tokens_usd"] + meta["cost/compute_usd"])
    assert sum(m["llm/prompt_tokens"] for m in outputs) == 20 * USAGE["prompt_tokens"]

    summary = summary_metadata(sqlite_instance, result.run_id)
    steps_usd = sum(m["cost_usd"] for m in outputs)
    assert summary["cost/prices"] == "run test prices"
    assert summary["llm/completion_tokens"] == 20 * USAGE["completion_tokens"]
    assert summary["cost/tokens_usd"] == pytest.approx(20 * (40 * 0.15 + 25 * 0.60) / 1e6)
    assert summary["cost_usd"] > steps_usd  # plus start and summary, the light steps
    light = summary["cost_usd"] - steps_usd
    assert light == pytest.approx(summary["cost/compute_usd"] - sum(
        m["cost/compute_usd"] for m in outputs
    ))  # fmt: skip
    tags = sqlite_instance.get_run_by_id(result.run_id).tags
    assert float(tags[COST_TAG]) == pytest.approx(summary["cost_usd"], abs=1e-6)
    assert "cost (USD)" in summary["per_satellite"]
    assert K8S_CONFIG_TAG not in tags  # a local run: priced from placements, with no pod tags

    key = AssetKey([f"test__cost_{sla}", "extract"])
    (record,) = sqlite_instance.fetch_materializations(key, limit=10).records
    metadata = record.asset_materialization.metadata
    assert read_metadata(metadata)["cost_usd"] == pytest.approx(steps_usd)
    assert metadata["items_in"].value == 20  # the counts are kept


def test_a_model_without_a_price_is_flagged_and_the_run_still_succeeds(
    tmp_path, sqlite_instance, http_recorder, prices
):
    http_recorder.reset(default=(200, {}, ANSWER))
    path = llm_cluster(tmp_path, http_recorder, "24h", model="mystery-model")
    result = run_cluster_file(path, PROMPTS[:2], instance=sqlite_instance)
    assert result.success
    (meta,) = step_outputs(sqlite_instance, result.run_id)
    assert meta["cost/tokens_usd"] == 0.0 and meta["cost_usd"] == meta["cost/compute_usd"] > 0
    assert "no price for model openai/mystery-model: its 130 tokens" in meta["cost/problems"]


def test_a_broken_prices_file_is_logged_and_never_fails_the_run(
    tmp_path, sqlite_instance, http_recorder, prices
):
    prices.write_text(PRICES.replace("cpu-hour: 0.01", "cpu-hours: 0.01"))
    http_recorder.reset(default=(200, {}, ANSWER))
    result = run_cluster_file(
        llm_cluster(tmp_path, http_recorder, "24h"), PROMPTS[:2], instance=sqlite_instance
    )
    assert result.success
    assert COST_TAG not in sqlite_instance.get_run_by_id(result.run_id).tags
    errors = [r.user_message for r in sqlite_instance.all_logs(result.run_id) if r.level >= 40]
    assert any("no cost for this step" in m and f"{prices}:4:" in m for m in errors)
    assert any("no cost for this run" in m and "did you mean 'cpu-hour'?" in m for m in errors)

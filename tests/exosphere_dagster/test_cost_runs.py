"""Cost in real runs: an LLM satellite (``engine: openai``, a provider model, answered by a local
OpenAI-compatible HTTP server) and a CPU satellite; every step records its compute seconds, pool
and cost, the summary adds them up as run metadata, run tags and asset metadata."""

from __future__ import annotations

import json

import pytest
from dagster import DagsterEventType

from exosphere_dagster.cost import PRICES_FILE_ENV
from exosphere_dagster.launch import run_cluster_file

pytestmark = pytest.mark.integration

PRICES = """\
pools:
  on-demand: {cpu-hour: 3.6}
  spot: {cpu-hour: 1.8}
  gpu-on-demand: {cpu-hour: 3.6, gpu-hour: 36.0}
  gpu-spot: {cpu-hour: 1.8, gpu-hour: 18.0}
models:
  provider-model: {input: 1000, output: 2000, batch-input: 500, batch-output: 1000}
"""
CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: test/cost-{sla}
  sla: {sla}
  trigger: api-call
  satellites:
    - uses: satellite/exospherehost/llm
      identifier: extract
      config: {{model: provider-model, engine: openai, base-url: "{url}/v1", batch: never}}
    - uses: satellite/test/note-failure
      identifier: note
      config: {{log_dir: {log_dir}, message: seen}}
"""
ANSWER = {
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 40, "completion_tokens": 25, "total_tokens": 65},
}  # fmt: skip
HOURLY = {"gpu-on-demand": 36.0 + 4 * 3.6, "gpu-spot": 18.0 + 4 * 1.8}  # 1 GPU + 4 CPU
CPU_HOURLY = {"on-demand": 3.6 * 0.5, "spot": 1.8 * 0.5}  # 500m


def step_metadata(instance, run_id: str, output: str) -> dict[str, dict]:
    """Step key -> the metadata of its ``output`` output."""
    found = {}
    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT):
        event = record.dagster_event
        if event.step_output_data.output_name == output:
            found[event.step_key] = {
                k: v.value for k, v in event.event_specific_data.metadata.items()
            }
    return found


def summary_metadata(instance, run_id: str) -> dict:
    (meta,) = [
        m for key, m in step_metadata(instance, run_id, "result").items() if "summary" in key
    ]
    return meta


@pytest.fixture
def prices(tmp_path, monkeypatch):
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES)
    monkeypatch.setenv(PRICES_FILE_ENV, str(path))
    return path


@pytest.mark.parametrize(
    ("sla", "gpu_pool", "cpu_pool"),
    [("6h", "gpu-on-demand", "on-demand"), ("24h", "gpu-spot", "spot")],
)
def test_every_step_records_its_cost_and_the_run_adds_them_up(
    tmp_path, sqlite_instance, http_recorder, prices, sla, gpu_pool, cpu_pool
):
    http_recorder.reset(default=(200, {}, ANSWER))
    path = tmp_path / f"{sla}.yml"
    path.write_text(CLUSTER.format(sla=sla, url=http_recorder.url, log_dir=tmp_path))
    result = run_cluster_file(
        path, [{"prompt": f"p{i}"} for i in range(5)], instance=sqlite_instance
    )
    assert result.success

    reports = step_metadata(sqlite_instance, result.run_id, "report")
    llm = [m for key, m in reports.items() if key.startswith("extract[")]
    notes = [m for key, m in reports.items() if key.startswith("note[")]
    assert llm and notes
    tokens = 0.0
    for meta in llm:
        assert meta["pool"] == gpu_pool and "EXOSPHERE" not in meta["cost/prices"]
        assert meta["gpu_seconds"] == meta["compute_seconds"] > meta["seconds"]
        assert meta["cpu_seconds"] == pytest.approx(4 * meta["compute_seconds"], abs=1e-3)
        expected_tokens = (
            meta["llm/prompt_tokens"] * 1000e-6 + meta["llm/completion_tokens"] * 2000e-6
        )
        assert meta["cost/tokens_usd"] == pytest.approx(expected_tokens)
        compute = meta["compute_seconds"] * HOURLY[gpu_pool] / 3600
        assert meta["cost/compute_usd"] == pytest.approx(compute, rel=1e-3)
        assert meta["cost_usd"] == pytest.approx(compute + expected_tokens, rel=1e-3)
        tokens += meta["llm/prompt_tokens"]
    assert tokens == 5 * 40  # every prompt counted once, in the step that asked it
    for meta in notes:
        assert meta["pool"] == cpu_pool and "cost/tokens_usd" not in meta
        assert meta["cost_usd"] == pytest.approx(
            meta["compute_seconds"] * CPU_HOURLY[cpu_pool] / 3600, rel=1e-3
        )

    total = sum(m["cost_usd"] for m in [*llm, *notes])
    summary = summary_metadata(sqlite_instance, result.run_id)
    assert summary["cost_usd"] == pytest.approx(total)
    assert summary["cost_usd_per_1000_items"] == pytest.approx(total / 5 * 1000)
    assert summary["llm/prompt_tokens"] == 200 and summary["llm/completion_tokens"] == 125
    assert summary["compute_seconds"] == pytest.approx(
        sum(m["compute_seconds"] for m in [*llm, *notes])
    )
    assert "compute s | cost USD" in summary["per_satellite"]
    assert summary["summary_step"]["pool"] == cpu_pool
    tags = sqlite_instance.get_run_by_id(result.run_id).tags
    assert float(tags["exosphere/cost_usd"]) == pytest.approx(total, abs=1e-6)
    assert float(tags["exosphere/cost_usd_per_1000"]) == pytest.approx(total * 200, rel=1e-4)

    # the light steps (start, gathering) record their own; each satellite's asset gets its cost
    manifests = step_metadata(sqlite_instance, result.run_id, "manifest")
    assert "exosphere__start" in manifests
    for meta in manifests.values():
        assert meta["pool"] == cpu_pool
        assert meta["cpu_seconds"] == pytest.approx(meta["compute_seconds"] * 0.25, abs=1e-4)
    costs = {}
    for key in sqlite_instance.get_asset_keys():
        (record,) = sqlite_instance.fetch_materializations(key, limit=1).records
        metadata = record.asset_materialization.metadata
        if "cost_usd" in metadata:
            costs[key.path[-1]] = metadata["cost_usd"].value
    assert costs == {
        "extract": pytest.approx(sum(m["cost_usd"] for m in llm)),
        "note": pytest.approx(sum(m["cost_usd"] for m in notes)),
    }


def test_a_pool_without_a_price_leaves_the_run_unpriced_and_says_so(
    tmp_path, sqlite_instance, http_recorder, monkeypatch
):
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES.replace("  gpu-on-demand:", "  # gpu-on-demand:"))  # not priced
    monkeypatch.setenv(PRICES_FILE_ENV, str(prices))
    http_recorder.reset(default=(200, {}, ANSWER))
    path = tmp_path / "6h.yml"
    path.write_text(CLUSTER.format(sla="6h", url=http_recorder.url, log_dir=tmp_path))
    result = run_cluster_file(path, [{"prompt": "p"}], instance=sqlite_instance)
    assert result.success
    summary = summary_metadata(sqlite_instance, result.run_id)
    assert summary["cost/unpriced_steps"] == 1  # the LLM step
    assert summary["cost_usd"] > 0  # the CPU step; the LLM step's tokens are shown apart
    assert summary["cost/tokens_usd"] == pytest.approx(40 * 1000e-6 + 25 * 2000e-6)
    warnings = [
        r.user_message
        for r in sqlite_instance.all_logs(result.run_id)
        if "cost not complete" in r.user_message
    ]
    assert warnings == [
        "extract: cost not complete: pool 'gpu-on-demand' has no price "
        "(priced: gpu-spot, on-demand, spot)"
    ]
    reports = step_metadata(sqlite_instance, result.run_id, "report")
    (llm,) = [m for key, m in reports.items() if key.startswith("extract[")]
    assert "cost_usd" not in llm and "pool 'gpu-on-demand'" in llm["cost/notes"]
    assert summary["cost_usd"] == pytest.approx(sum(m.get("cost_usd", 0) for m in reports.values()))
    assert json.dumps(llm)  # plain values only

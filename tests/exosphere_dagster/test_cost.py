"""The price table (located errors for a bad file), a step's cost from its placement, seconds and
tokens, the pools placement names, the tier batch sizes, and the estimate `exosphere plan`
prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exosphere_dagster.catalog import registry_with_plugins
from exosphere_dagster.cost import (
    EXAMPLE_PRICES,
    PRICES_FILE_ENV,
    PriceTableError,
    Tokens,
    load_prices,
    plan_cost_lines,
    record_step,
    step_cost,
)
from exosphere_dagster.placement import (
    Placement,
    PlacementPolicy,
    k8s_tag,
    light_k8s_config,
    placement_of,
    quantity,
    satellite_k8s_config,
    step_resources,
)
from exosphere_dagster.runtime.chunking import run_chunk_size
from exosphere_dagster.runtime.items import ChunkReport
from exosphere_dagster.summary import cost_tags, run_cost
from yaml_loader import load_text, plan

REPO = Path(__file__).resolve().parents[2]
CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: test/cost-{sla}
  sla: {sla}
  trigger: api-call
  satellites:
    - uses: satellite/exospherehost/llm
      identifier: extract
      config: {{model: {model}, engine: {engine}}}
    - uses: satellite/exospherehost/call-webhook
      identifier: notify
      config: {{url: "http://127.0.0.1:9/x", method: POST}}
"""


def _plan(sla: str = "6h", model: str = "tiny", engine: str = "vllm"):
    text = CLUSTER.format(sla=sla, model=model, engine=engine)
    return plan(load_text(text, f"{sla}.yml"), registry_with_plugins())


def _prices(tmp_path: Path, text: str):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return load_prices(path)


# -- the price table ---------------------------------------------------------------------------
def test_the_example_table_is_used_without_a_file_and_says_so(monkeypatch):
    monkeypatch.delenv(PRICES_FILE_ENV, raising=False)
    table = load_prices()
    assert "example prices" in table.source
    assert table.pools["gpu-spot"].gpu_hour < table.pools["gpu-on-demand"].gpu_hour
    mini = table.models["gpt-4o-mini"]
    assert (mini.batch_input, mini.batch_output) == (mini.input / 2, mini.output / 2)


def test_the_env_var_names_the_deployments_table(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text("pools:\n  spot: {cpu-hour: 0.5}\n")
    monkeypatch.setenv(PRICES_FILE_ENV, str(path))
    table = load_prices()
    assert table.source == str(path) and table.pools["spot"].cpu_hour == 0.5
    assert table.models == {} and table.estimate.seconds_per_item == 1.0


def test_the_price_table_in_the_docs_is_the_example_file():
    text = (REPO / "docs" / "cost.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    tables = [b for b in blocks if b.lstrip().startswith("# Example price table")]
    assert tables == [EXAMPLE_PRICES.read_text()]


@pytest.mark.parametrize(
    ("text", "line", "column", "path", "message"),
    [
        (
            "pools:\n  spot: {cpu-hours: 0.5}\n",
            2,
            10,
            "pools.spot.cpu-hours",
            "did you mean 'cpu-hour'?",
        ),
        ("pools:\n  spot:\n    gpu-hour: -1\n", 3, 15, "pools.spot.gpu-hour", "0"),
        ("pools:\n  spot: {cpu-hour: cheap}\n", 2, 20, "pools.spot.cpu-hour", "number"),
        ("models: {}\n", 1, 1, "<document>", "missing required key 'pools'"),
        (
            "pools: {}\nmodels:\n  gpt-4o-mini: {input: 0.15}\n",
            3,
            3,
            "models.gpt-4o-mini",
            "missing required key 'output'",
        ),
        ("pools: {}\ncurrency: EUR\n", 2, 11, "currency", "USD"),
        ("- spot\n", 1, 1, "<document>", "a price table must be a mapping"),
        ("", 1, 1, "<document>", "file is empty"),
        ("pools: {spot: [}\n", 1, 16, "<document>", ""),
    ],
)
def test_a_bad_table_is_a_located_error(tmp_path, text, line, column, path, message):
    with pytest.raises(PriceTableError) as caught:
        _prices(tmp_path, text)
    (error,) = caught.value.errors
    where = f"{tmp_path / 'prices.yaml'}:{error.line}:{error.column}: {path}:"
    assert str(error).startswith(where), str(error)
    assert (error.line, error.column) == (line, column), str(error)
    assert message in str(error)
    assert "in the price table ($EXOSPHERE_PRICES_FILE)" in str(caught.value)


def test_a_missing_file_says_which_and_how_to_fix(tmp_path):
    with pytest.raises(PriceTableError, match=r"no such file\n    hint: check EXOSPHERE_PRICES"):
        load_prices(tmp_path / "absent.yaml")


# -- what a step holds, and what it costs ---------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("1Gi", 2**30), ("512Mi", 2**29), ("1e3", 1000)],
)
def test_kubernetes_quantities(text, value):
    assert quantity(text) == value


def test_a_bad_quantity_names_the_value():
    with pytest.raises(ValueError, match="not a Kubernetes quantity: '2 cores'"):
        quantity("2 cores")


@pytest.mark.parametrize(
    ("sla", "llm_pool", "light_pool"),
    [("6h", "gpu-on-demand", "on-demand"), ("24h", "gpu-spot", "spot")],
)
def test_each_step_is_placed_on_a_named_pool(sla, llm_pool, light_pool):
    cluster, registry, policy = _plan(sla), registry_with_plugins(), PlacementPolicy()
    placements = {
        n.id: placement_of(
            k8s_tag(satellite_k8s_config(cluster, step_resources(n, registry.get(n.uses)), policy))
        )
        for n in cluster.nodes
    }
    assert placements["extract"] == Placement(llm_pool, cpu=4, gpu=1, memory_gib=32)
    assert placements["notify"] == Placement(light_pool, cpu=0.5, gpu=0, memory_gib=1)
    light = placement_of(k8s_tag(light_k8s_config(cluster, policy)))
    assert light == Placement(light_pool, cpu=0.25, memory_gib=0.5)


def test_the_placement_file_renames_pools(tmp_path):
    path = tmp_path / "placement.yaml"
    path.write_text(
        "tiers:\n  24h: {name: preemptible, node-selector: {pool: cheap}}\n"
        "  12h: {node-selector: {pool: mid}}\ngpu: {name: a100}\n"
    )
    policy = PlacementPolicy.load(path)
    assert policy.tiers["24h"].name == "preemptible"
    assert policy.tiers["12h"].name == "spot"  # no name given: the default's is kept
    resources = step_resources(
        _plan("24h").nodes[0], registry_with_plugins().get("satellite/exospherehost/llm")
    )
    tag = k8s_tag(satellite_k8s_config(_plan("24h"), resources, policy))
    assert placement_of(tag).pool == "a100-preemptible"
    assert placement_of({}) == Placement()


def test_compute_is_wall_seconds_times_requests_times_the_pool_price(tmp_path):
    prices = _prices(
        tmp_path, "pools:\n  gpu-spot: {cpu-hour: 0.1, gpu-hour: 2.0, memory-gib-hour: 0.01}\n"
    )
    held = Placement("gpu-spot", cpu=4, gpu=1, memory_gib=32)
    cost = step_cost(held, 1800, prices)  # half an hour
    assert cost.compute_usd == pytest.approx((4 * 0.1 + 2.0 + 32 * 0.01) / 2)
    assert cost.tokens_usd is None and cost.cost_usd == cost.compute_usd
    metrics = cost.metrics()
    assert metrics["compute_seconds"] == 1800 and metrics["gpu_seconds"] == 1800
    assert metrics["cpu_seconds"] == 7200 and metrics["cost_usd"] == pytest.approx(1.36)


def test_provider_tokens_at_sync_and_batch_prices(tmp_path):
    prices = _prices(
        tmp_path,
        "pools: {spot: {cpu-hour: 0}}\nmodels:\n"
        "  m: {input: 1.0, output: 4.0, batch-input: 0.5, batch-output: 2.0}\n"
        "  no-discount: {input: 1.0, output: 4.0}\n",
    )
    held = Placement("spot", cpu=1)
    sync = step_cost(held, 10, prices, Tokens(2e6, 1e6), "openai", "m")
    assert sync.tokens_usd == pytest.approx(2 * 1.0 + 1 * 4.0)
    half = step_cost(held, 10, prices, Tokens(2e6, 1e6, 1e6, 1e6), "openai", "m")
    assert half.tokens_usd == pytest.approx(1 * 1.0 + 1 * 0.5 + 1 * 2.0)
    batch = step_cost(held, 10, prices, Tokens(2e6, 1e6, 2e6, 1e6), "openai", "m")
    assert batch.tokens_usd == pytest.approx(sync.tokens_usd / 2)
    same = step_cost(held, 10, prices, Tokens(2e6, 1e6, 2e6, 1e6), "openai", "no-discount")
    assert same.tokens_usd == sync.tokens_usd  # no batch price given: no discount assumed


def test_self_hosted_models_cost_their_compute_only(tmp_path):
    prices = _prices(
        tmp_path, "pools: {gpu-spot: {gpu-hour: 3.6}}\nmodels:\n  m: {input: 1, output: 1}\n"
    )
    held = Placement("gpu-spot", gpu=1)
    vllm = step_cost(held, 10, prices, Tokens(1e6, 1e6), "vllm", "m")  # vLLM: never tokens
    assert vllm.tokens_usd is None and vllm.cost_usd == pytest.approx(0.01)
    own = step_cost(held, 10, prices, Tokens(1e6, 1e6), "openai", "my-llama")
    assert own.tokens_usd is None
    assert own.notes == ("model 'my-llama' has no token price: counted as self-hosted",)
    prices = prices.model_copy(update={"self_hosted": ["my-llama", "m"]})
    for model in ("my-llama", "m"):  # listed as self-hosted: compute only, and no note
        listed = step_cost(held, 10, prices, Tokens(1e6, 1e6), "openai", model)
        assert listed.tokens_usd is None and listed.notes == ()


def test_an_unpriced_pool_leaves_the_step_unpriced_with_a_note(tmp_path):
    prices = _prices(tmp_path, "pools:\n  spot: {cpu-hour: 1}\n")
    cost = step_cost(Placement("gpu-spot", gpu=1), 60, prices)
    assert cost.compute_usd is None
    assert cost.notes == ("pool 'gpu-spot' has no price (priced: spot)",)
    assert "cost_usd" not in cost.metrics() and cost.metrics()["cost/unpriced_steps"] == 1


def test_a_broken_table_never_fails_a_step(tmp_path, monkeypatch):
    path = tmp_path / "prices.yaml"
    path.write_text("pools:\n  spot: {cpu-hour: lots}\n")
    monkeypatch.setenv(PRICES_FILE_ENV, str(path))
    tags = k8s_tag(light_k8s_config(_plan("24h"), PlacementPolicy()))
    record = record_step(tags, 4.0)
    assert record.pool == "spot" and record.prices == "none"
    assert record.metrics["cpu_seconds"] == 1.0 and "cost_usd" not in record.metrics
    assert f"{path}:2:20: pools.spot.cpu-hour" in record.notes[0]
    path.write_text("pools:\n  spot: {cpu-hour: 3.6}\n")  # fixed: the next step reads it again
    import os

    os.utime(path, (1, 1))
    assert record_step(tags, 4.0).metrics["cost_usd"] == pytest.approx(0.001)


def test_run_cost_adds_up_steps_and_divides_by_the_run_inputs():
    reports = {
        "a": [ChunkReport("a", metrics={"cost_usd": 0.25, "compute_seconds": 2.0, "seconds": 1})],
        "b": [
            ChunkReport("b", metrics={"cost_usd": 0.5, "llm/prompt_tokens": 10.0}),
            ChunkReport("b", metrics={"cost/unpriced_steps": 1.0, "llm/prompt_tokens": 5.0}),
        ],
    }
    cost = run_cost(reports, inputs=250)
    assert cost == {
        "cost_usd": 0.75,
        "compute_seconds": 2.0,
        "llm/prompt_tokens": 15.0,
        "cost/unpriced_steps": 1.0,
        "cost_usd_per_1000_items": 3.0,
    }
    assert cost_tags(cost) == {
        "exosphere/cost_usd": "0.750000",
        "exosphere/cost_usd_per_1000": "3.000000",
    }
    assert run_cost({"a": [ChunkReport("a")]}, 10) == {} and cost_tags({}) == {}


# -- tier batch sizes ----------------------------------------------------------------------------
def test_an_llm_satellite_gets_small_batches_on_6h_and_one_large_batch_on_24h():
    for workers in (1, 2, 16):
        assert run_chunk_size(64, "24h", workers, batched=True) >= 64  # one chunk
        assert run_chunk_size(64, "12h", workers, batched=True) == 64
    assert run_chunk_size(64, "6h", 2, batched=True) == 8  # 8 chunks for 2 workers
    assert run_chunk_size(64, "6h", 1, batched=True) == 16  # 4 chunks in process
    # 10,000 items: 157 per chunk for 64 chunks exceeds the 6h tier's largest batch (128), so
    # two whole waves of 64 chunks of 79
    assert run_chunk_size(10_000, "6h", 16, batched=True) == 79
    assert run_chunk_size(10_000, "24h", 16, batched=True) == 625


# -- the estimate of `exosphere plan` ------------------------------------------------------------
def _total(lines: list[str]) -> float:
    return float(re.search(r"per 1,000 items: \$([0-9.]+)", lines[0]).group(1))


def test_plan_estimate_per_1000_items_with_its_assumptions(tmp_path):
    prices = _prices(
        tmp_path,
        "pools:\n  on-demand: {cpu-hour: 3.6}\n  gpu-on-demand: {gpu-hour: 36, cpu-hour: 3.6}\n"
        "estimate:\n  seconds-per-item: 0.5\n  completion-tokens-per-item: 100\n"
        "  gpu-tokens-per-second: {6h: 50}\n",
    )
    lines = plan_cost_lines(_plan("6h"), prices=prices, policy=PlacementPolicy())
    # extract: 1,000 x 100 tokens / 50 tokens/s = 2,000 s x (36 + 4 x 3.6) $/h = $28.00
    # notify: 1,000 x 0.5 s x 0.5 CPU x 3.6 $/h = $0.25
    assert lines[0] == f"  cost estimate per 1,000 items: $28.2500  (prices: {prices.source})"
    assert lines[1].startswith("    extract: $28.0000  [gpu-on-demand, 4 CPU + 1 GPU; self-hosted")
    assert "100 completion tokens/item at 50 tokens/s per GPU (6h batches)" in lines[1]
    assert lines[2] == "    notify: $0.2500  [on-demand, 0.5 CPU; 0.5 s/item]"
    assert lines[3].startswith("    assumes: each run input reaches every satellite once")


def test_plan_estimate_is_lower_for_the_24h_tier_and_uses_batch_prices(monkeypatch):
    monkeypatch.delenv(PRICES_FILE_ENV, raising=False)
    monkeypatch.delenv("EXOSPHERE_BATCH_TIERS", raising=False)
    policy = PlacementPolicy()
    six, day = (_total(plan_cost_lines(_plan(s), policy=policy)) for s in ("6h", "24h"))
    assert day < six / 2
    provider = plan_cost_lines(_plan("24h", "gpt-4o-mini", "openai"), policy=policy)
    assert "gpt-4o-mini: 500 + 250 tokens/item at batch prices" in provider[1]
    sync = plan_cost_lines(_plan("6h", "gpt-4o-mini", "openai"), policy=policy)
    assert "at sync prices" in sync[1]


def test_plan_estimate_with_a_broken_or_incomplete_table(tmp_path, monkeypatch):
    path = tmp_path / "prices.yaml"
    path.write_text("pools:\n  spot: {cpu-hour: x}\n")
    monkeypatch.setenv(PRICES_FILE_ENV, str(path))
    lines = plan_cost_lines(_plan("6h"), policy=PlacementPolicy())
    assert lines[0] == "  cost per 1,000 items: unknown, the price table has errors:"
    assert lines[1].startswith(f"    {path}:2:20: pools.spot.cpu-hour")
    partial = plan_cost_lines(
        _plan("6h"), prices=_prices(tmp_path, "pools: {on-demand: {cpu-hour: 1}}\n")
    )
    assert "(incomplete)" in partial[0] and "extract: pool not priced" in partial[1]

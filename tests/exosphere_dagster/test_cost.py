"""The price table (a deployment's YAML file, errors with their lines), what a step reserves and
costs (compute x pool prices, tokens x model prices, sync vs batch), and the plan's estimate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clusters import cluster, satellite_entry, write_cluster
from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.chunking import run_chunk_size
from exosphere_dagster.resolve.cost.estimate import plan_cost_lines
from exosphere_dagster.resolve.cost.prices import (
    EXAMPLE_PRICES,
    PriceTableError,
    load_prices,
    model_of,
    quantity,
    step_cost,
)
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ResourceRequest
from exosphere_dagster.resolve.placement import (
    Placement,
    PlacementPolicy,
    Pool,
    satellite_placement,
    step_resources,
)
from satellite_ops.satellites.llm import LlmConfig
from yaml_loader import load, plan

PRICES = """\
source: test prices
pools:
  on-demand: {cpu-hour: 0.04, gpu-hour: 2.0, memory-gib-hour: 0.004}
  spot: {cpu-hour: 0.01, gpu-hour: 0.8}
models:
  - {engine: openai, model: gpt-4o-mini, sync: {input: 0.15, output: 0.60},
     batch: {input: 0.075, output: 0.30}}
  - {engine: openai, model: no-batch-price, sync: {input: 1.0, output: 2.0}}
  - {engine: vllm, self-hosted: true}
"""


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES)
    return load_prices(path)


def test_without_a_prices_file_the_example_table_applies_and_says_so(monkeypatch):
    monkeypatch.delenv("EXOSPHERE_PRICES_FILE", raising=False)
    example = Deployment.load().prices
    assert example is not None
    assert "example" in example.source and "EXOSPHERE_PRICES_FILE" in example.source
    assert {"on-demand", "spot"} <= set(example.pools)
    mini = example.model("openai", "gpt-4o-mini")
    assert mini.batch.input == mini.sync.input / 2 and mini.batch.output == mini.sync.output / 2
    assert example.model("vllm", "any/model").self_hosted


DOCS = Path(__file__).resolve().parents[2] / "docs" / "cost.md"


def test_the_docs_show_the_built_in_example_prices():
    assert f"```yaml\n{EXAMPLE_PRICES}```" in DOCS.read_text()


def test_the_docs_show_the_error_a_bad_file_really_gets(tmp_path, monkeypatch):
    text = DOCS.read_text()
    bad = text.split("```yaml\nsource: my prices\n", 1)[1].split("```", 1)[0]
    shown = text.split("gives:\n\n```text\n", 1)[1].split("```", 1)[0]
    (tmp_path / "prices.yaml").write_text("source: my prices\n" + bad)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PriceTableError) as caught:
        load_prices("prices.yaml")
    assert str(caught.value) == shown.rstrip("\n")


def test_chunking_refuses_an_unknown_tier():
    with pytest.raises(KeyError, match="unknown SLA tier '48h': expected one of 6h, 12h, 24h"):
        run_chunk_size(100, "48h", 2, batched=True)


def test_the_prices_file_comes_from_the_deployment_setting(tmp_path, monkeypatch):
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES)
    monkeypatch.setenv("EXOSPHERE_PRICES_FILE", str(path))
    first = Deployment.load().prices
    assert first is not None and first.source == "test prices"
    path.write_text(PRICES.replace("test prices", "edited prices"))
    stat = path.stat()  # a later modification time, even within the clock's resolution
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    edited = Deployment.load().prices
    assert edited is not None and edited.source == "edited prices"  # read again when changed


def test_a_missing_prices_file_names_the_setting(tmp_path, monkeypatch):
    """Runs go on without prices; the deployment says why there are none."""
    monkeypatch.setenv("EXOSPHERE_PRICES_FILE", str(tmp_path / "nope.yaml"))
    deployment = Deployment.load()
    assert deployment.prices is None
    assert deployment.prices_problem is not None
    assert "EXOSPHERE_PRICES_FILE" in deployment.prices_problem
    assert "nope.yaml:1:1: <document>: cannot read file" in deployment.prices_problem


@pytest.mark.parametrize(
    ("text", "line", "where", "message"),
    [
        (PRICES.replace("cpu-hour: 0.01", "cpu-hours: 0.01"), 4, "pools.spot.cpu-hours",
         "did you mean 'cpu-hour'?"),
        (PRICES.replace("gpu-hour: 2.0", "gpu-hour: -2.0"), 3, "pools.on-demand.gpu-hour",
         "greater than or equal to 0"),
        (PRICES.replace("gpu-hour: 2.0", "gpu-hour: two"), 3, "pools.on-demand.gpu-hour",
         "expected: a number"),
        (PRICES.replace("{engine: vllm, self-hosted: true}", "{engine: vllm}"), 9, "models[2]",
         "give 'sync:' token prices, or 'self-hosted: true'"),
        (PRICES.replace("source: test prices\n", ""), 1, "<document>",
         "missing required key 'source'"),
        ("- just a list\n", 1, "<document>", "a prices file must be a mapping"),
        ("pools: {on-demand: {cpu-hour: 1}\n", 1, "", "YAML"),
    ],
)  # fmt: skip
def test_a_bad_prices_file_is_reported_with_its_line(tmp_path, text, line, where, message):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(PriceTableError) as caught:
        load_prices(path)
    report = str(caught.value)
    assert "in the prices file" in report and "docs/cost.md" in report
    assert f"{path}:{line}:" in report if where else str(path) in report
    assert where in report and message in report


@pytest.mark.parametrize(
    ("value", "expected"),
    [("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("1Gi", 2**30), ("512Mi", 2**29), ("2G", 2e9)],
)
def test_kubernetes_quantities(value, expected):
    assert quantity(value) == expected


def test_a_bad_quantity_is_an_error():
    with pytest.raises(ValueError, match="not a Kubernetes quantity: '2 cores'"):
        quantity("2 cores")


def _plan(tmp_path, sla: str, llm_config: dict | None = None, resources: dict | None = None):
    config = {"model": "gpt-4o-mini", "engine": "openai", "base-url": "http://127.0.0.1:9/v1"}
    entry = satellite_entry(
        "satellite/exospherehost/llm", "extract", {**config, **(llm_config or {})}
    )
    if resources:
        entry["resources"] = resources
    data = cluster(f"test/cost-{sla}", [entry], sla=sla)
    return plan(load(write_cluster(tmp_path, f"{sla}.yml", data)), registry_with_plugins())


def _pod(pool: str, cpu: str = "0", gpu: int = 0, memory: str = "0") -> ResourceRequest:
    """A resolved pod's requests in ``pool``, as the step that costs them reads them."""
    asks = {"cpu": cpu, "memory": memory}
    return ResourceRequest.of(Placement(asks, (Pool(name=pool),), gpu=gpu))


@pytest.mark.parametrize(("sla", "pool"), [("6h", "on-demand"), ("12h", "spot"), ("24h", "spot")])
def test_a_step_reserves_its_requests_in_its_tiers_pool(tmp_path, sla, pool):
    cluster_plan = _plan(tmp_path, sla)
    node = cluster_plan.nodes[0]
    definition = registry_with_plugins().get(node.uses)
    resources = step_resources(node, definition)
    placed = satellite_placement(cluster_plan, resources, PlacementPolicy())
    request = ResourceRequest.of(placed)
    assert (request.pool, request.cpu, request.gpu, request.memory_gib) == (pool, 4.0, 1, 32.0)
    labels = placed.k8s_config()["pod_template_spec_metadata"]["labels"]
    assert labels["exosphere.host/pool"] == pool  # the tag, where written, says the same
    named = PlacementPolicy(tiers={sla: Pool({"pool": "a100"}, name="a100-reserved")})
    assert (
        ResourceRequest.of(satellite_placement(cluster_plan, resources, named)).pool
        == "a100-reserved"
    )
    unnamed = PlacementPolicy(tiers={sla: Pool({"pool": "latency"})})  # the tier's capacity
    assert ResourceRequest.of(satellite_placement(cluster_plan, resources, unnamed)).pool == pool


def test_the_placement_file_names_pools_and_refuses_unknown_tiers(tmp_path, monkeypatch):
    path = tmp_path / "placement.yaml"
    path.write_text("tiers:\n  24h: {node-selector: {pool: batch}, name: batch-spot}\n")
    monkeypatch.setenv("EXOSPHERE_PLACEMENT_FILE", str(path))
    policy = Deployment.load().placement  # the one reader of the setting
    assert policy.pool("24h").name == "batch-spot" and policy.pool("6h").name == "on-demand"
    path.write_text("tiers:\n  48h: {node-selector: {pool: slow}}\n")
    with pytest.raises(ValueError, match="tiers.48h: unknown SLA tier '48h'"):
        PlacementPolicy.load(path)


def test_compute_is_wall_seconds_times_requests_times_pool_prices(table):
    gpu_step = _pod("on-demand", cpu="4", gpu=1, memory="32Gi")
    cost = step_cost(table, gpu_step, 1800.0, {})
    assert cost.compute_usd == pytest.approx(0.5 * (4 * 0.04 + 2.0 + 32 * 0.004))
    assert (cost.cpu_seconds, cost.gpu_seconds, cost.tokens_usd) == (7200.0, 1800.0, 0.0)
    spot = step_cost(table, _pod("spot", cpu="500m"), 3600.0, {})
    assert spot.compute_usd == pytest.approx(0.005) and spot.cost_usd == spot.compute_usd
    assert spot.metrics()["cost_usd"] == pytest.approx(0.005)


def test_tokens_through_the_batch_api_cost_the_batch_price(table):
    million = {"llm/prompt_tokens": 1e6, "llm/completion_tokens": 1e6}
    mini = ("openai", "gpt-4o-mini")
    sync = step_cost(table, _pod("spot"), 0.0, million, mini)
    assert sync.tokens_usd == pytest.approx(0.75)
    half = {**million, "llm/batch_prompt_tokens": 5e5, "llm/batch_completion_tokens": 5e5}
    assert step_cost(table, _pod("spot"), 0.0, half, mini).tokens_usd == pytest.approx(0.5625)
    batch = {**million, "llm/batch_prompt_tokens": 1e6, "llm/batch_completion_tokens": 1e6}
    assert step_cost(table, _pod("spot"), 0.0, batch, mini).tokens_usd == pytest.approx(0.375)
    no_batch = step_cost(table, _pod("spot"), 0.0, batch, ("openai", "no-batch-price"))
    assert no_batch.tokens_usd == pytest.approx(3.0)
    assert no_batch.problems == ("openai/no-batch-price has no batch price: its batch tokens "
                                 "are priced as sync",)  # fmt: skip


def test_self_hosted_models_cost_their_compute_and_unknown_ones_are_flagged(table):
    used = {"llm/prompt_tokens": 1000.0, "llm/completion_tokens": 500.0}
    hosted = step_cost(table, _pod("spot", gpu=1), 3600.0, used, ("vllm", "meta/llama"))
    assert hosted.tokens_usd == 0.0 and hosted.compute_usd == pytest.approx(0.8)
    assert hosted.problems == ()
    unknown = step_cost(table, _pod("nowhere"), 10.0, used, ("openai", "mystery"))
    assert unknown.cost_usd == 0.0
    assert "no price for node pool 'nowhere' (priced: on-demand, spot)" in unknown.problems[0]
    assert "no price for model openai/mystery: its 1500 tokens" in unknown.problems[1]


def test_the_model_of_a_step_comes_from_its_config_and_the_models_defaults():
    assert model_of({"model": "m"}, LlmConfig) == ("vllm", "m")  # llm's default engine
    assert model_of({"model": "m", "engine": "openai"}, LlmConfig) == ("openai", "m")
    assert model_of({"url": "http://x"}, None) is None
    assert model_of({"model": object()}, None) is None  # a template: unknown until run time


def test_plan_estimate_shows_what_a_longer_sla_saves(tmp_path, table, monkeypatch):
    monkeypatch.setenv("EXOSPHERE_BATCH_TIERS", "24h")
    six = plan_cost_lines(_plan(tmp_path, "6h"), registry_with_plugins(), table)
    day = plan_cost_lines(_plan(tmp_path, "24h"), registry_with_plugins(), table)
    assert six[0] == "  cost estimate per 1,000 items (prices: test prices):"
    assert "extract  pool on-demand, 4 CPU + 1 GPU: 63 step(s) of up to 16 item(s)" in six[1]
    assert "(openai/gpt-4o-mini, sync price)" in six[1]
    assert "extract  pool spot, 4 CPU + 1 GPU: 4 step(s) of up to 256 item(s)" in day[1]
    assert "(openai/gpt-4o-mini, batch price)" in day[1]
    # tokens: 1,000 x (500 x 0.15 + 200 x 0.60) / 1e6 = $0.195 sync, half through a batch
    assert "+ $0.1950 tokens" in six[1] and "+ $0.0975 tokens" in day[1]

    def total(lines: list[str]) -> float:
        (line,) = [x for x in lines if x.startswith("    total: $")]
        return float(line.split("$")[1].split()[0].replace(",", ""))

    assert total(day) < 0.5 * total(six)
    assert day[-1].startswith("    assumes: 1,000 items reach every satellite")
    never = plan_cost_lines(
        _plan(tmp_path, "24h", {"batch": "never"}), registry_with_plugins(), table
    )
    assert "(openai/gpt-4o-mini, sync price)" in never[1]


def test_plan_estimate_warns_about_what_it_cannot_price(tmp_path, table):
    lines = plan_cost_lines(
        _plan(tmp_path, "6h", {"model": "mystery"}, {"gpu": 0, "cpu": "250m"}),
        registry_with_plugins(),
        table,
    )
    assert "extract  pool on-demand, 0.25 CPU:" in lines[1]
    assert any(line.startswith("    warning: no price for model openai/mystery") for line in lines)

"""The resolve stage: every value a run derives from its tier, its satellites and the deployment
is computed once by ``resolve()`` into a frozen ExecutionPlan, and the Deployment is loaded once
(cached) with located errors. One test per concept."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from clusters import cluster, satellite_entry, write_cluster
from exosphere_dagster.errors import ExosphereError
from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.cost.estimate import estimate_lines
from exosphere_dagster.resolve.cost.prices import EXAMPLE_PRICES, load_prices
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ChunkPolicy
from exosphere_dagster.resolve.placement import PlacementError
from exosphere_dagster.resolve.resolve import resolve
from exosphere_dagster.resolve.settings import Settings
from satellite_ops import Resources
from satellite_ops.context import BatchPolicy
from yaml_loader import ConfigErrors, load, plan
from yaml_loader.errors import format_key_path
from yaml_loader.tiers import TIERS

LLM = "satellite/exospherehost/llm"
LLM_CONFIG = {"model": "gpt-4o-mini", "engine": "openai", "base-url": "http://127.0.0.1:9/v1"}
WEBHOOK = "satellite/exospherehost/call-webhook"


@pytest.fixture(scope="module")
def registry():
    return registry_with_plugins()


def _plan(tmp_path, registry, sla="6h", entries=None, **fields):
    entries = entries or [satellite_entry(LLM, "extract", LLM_CONFIG)]
    data = cluster(f"test/resolve-{sla}", entries, sla=sla, **fields)
    return plan(load(write_cluster(tmp_path, f"r-{sla}.yml", data)), registry)


def test_the_execution_plan_is_frozen(tmp_path, registry):
    execution = resolve(_plan(tmp_path, registry), Deployment(), registry)
    with pytest.raises(dataclasses.FrozenInstanceError):
        execution.run = execution.run  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        execution.node("extract").chunk = ChunkPolicy(1, 1, 1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        execution.nodes["other"] = execution.node("extract")  # type: ignore[index]
    with pytest.raises(TypeError):
        execution.run.tags["dagster/priority"] = "99"  # type: ignore[index]


@pytest.mark.parametrize("sla", ["6h", "12h", "24h"])
def test_each_tier_gives_its_priority_max_runtime_and_urgency(tmp_path, registry, sla):
    run = resolve(_plan(tmp_path, registry, sla), Deployment(), registry).run
    hours = {"6h": 6, "12h": 12, "24h": 24}[sla]
    assert run.priority == {"6h": 30, "12h": 20, "24h": 10}[sla]
    assert run.max_runtime_seconds == run.sla_seconds == hours * 3600
    assert run.urgent_within_seconds == 0.25 * hours * 3600
    assert run.tags["dagster/priority"] == str(run.priority)
    assert run.tags["dagster/max_runtime"] == str(hours * 3600)
    assert run.tags["exosphere/sla"] == sla


def test_a_clusters_own_max_runtime_tag_tightens_never_loosens(tmp_path, registry):
    tight = _plan(tmp_path, registry, "6h", tags={"dagster/max_runtime": "600"})
    assert resolve(tight, Deployment(), registry).run.max_runtime_seconds == 600
    loose = _plan(tmp_path, registry, "12h", tags={"dagster/max_runtime": "999999"})
    run = resolve(loose, Deployment(), registry).run
    assert run.max_runtime_seconds == 12 * 3600 and run.tags["dagster/max_runtime"] == "43200"


def test_the_deadline_is_real_hours_across_a_daylight_saving_switch(tmp_path, registry):
    run = resolve(_plan(tmp_path, registry, "24h"), Deployment(), registry).run
    zone = ZoneInfo("America/New_York")  # clocks jump forward on 2026-03-08
    trigger = datetime(2026, 3, 7, 12, 0, tzinfo=zone)
    deadline = run.deadline(trigger)
    assert deadline - trigger == timedelta(hours=24)
    assert deadline.astimezone(zone).hour == 13  # the wall clock moved, the SLA did not
    assert run.is_urgent(deadline, deadline - timedelta(hours=5))
    assert not run.is_urgent(deadline, deadline - timedelta(hours=7))


COUNTS = (0, 1, 7, 100, 999, 5000, 100000)
WORKERS = (1, 4, 16)
# run_chunk_size's results before the resolve stage, for every count x workers above; since
# the cap on a segment's chunks (SEGMENT_CHUNKS_CAP), 100,000 items at 6h are 128 chunks of 782
# (were 500, 481 and 391 items: 200 to 256 chunks); since 24h's largest chunk is 10,000 (was
# 2,000), its 5,000 and 100,000 items on one worker are one chunk of 5,000 and 10 of 10,000.
OLD_FORMULA = {
    ("6h", False): [10, 10, 10, 10, 10, 10, 10, 10, 10, 25, 10, 10, 250, 63, 16, 417, 313, 79, 782, 782, 782],  # noqa: E501
    ("6h", True): [8, 8, 8, 8, 8, 8, 8, 8, 8, 25, 8, 8, 250, 63, 16, 250, 157, 79, 256, 250, 224],  # noqa: E501
    ("12h", False): [50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 500, 125, 50, 834, 625, 157, 1000, 962, 782],  # noqa: E501
    ("12h", True): [64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 500, 125, 64, 834, 625, 157, 1021, 962, 782],  # noqa: E501
    ("24h", False): [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 999, 250, 200, 5000, 1250, 313, 10000, 8334, 6250],  # noqa: E501
    ("24h", True): [256, 256, 256, 256, 256, 256, 256, 256, 256, 256, 256, 256, 999, 256, 256, 2500, 1250, 313, 4000, 3572, 3125],  # noqa: E501
}  # fmt: skip


@pytest.mark.parametrize(("sla", "batched"), list(OLD_FORMULA))
def test_chunk_sizes_equal_the_old_formulas_table(tmp_path, registry, sla, batched):
    entries = [
        satellite_entry(LLM, "extract", LLM_CONFIG)
        if batched
        else satellite_entry(WEBHOOK, "send", {"url": "http://127.0.0.1:9/hook"})
    ]
    execution = resolve(_plan(tmp_path, registry, sla, entries), Deployment(), registry)
    node = execution.nodes[execution.plan.nodes[0].id]
    assert node.batched is batched
    assert execution.chunks[node.segment] == node.chunk
    sizes = [node.chunk.size(n, w) for n in COUNTS for w in WORKERS]
    assert sizes == OLD_FORMULA[(sla, batched)]


def test_resources_are_numbers_and_a_yaml_override_wins(tmp_path, registry):
    gpu = resolve(_plan(tmp_path, registry), Deployment(), registry).node("extract").resources
    assert (gpu.cpu, gpu.memory_gib, gpu.gpu, gpu.pool) == (4.0, 32.0, 1, "on-demand")
    small = satellite_entry(LLM, "extract", LLM_CONFIG)
    small["resources"] = {"cpu": "500m", "memory": "1Gi", "gpu": 0}
    planned = _plan(tmp_path, registry, "12h", [small])
    request = resolve(planned, Deployment(), registry).node("extract").resources
    assert (request.cpu, request.memory_bytes, request.gpu, request.pool) == (0.5, 2**30, 0, "spot")
    assert request.placement.requests == {"cpu": "500m", "memory": "1Gi"}  # k8s reads the text


def test_the_pool_comes_from_the_placement_file(tmp_path, registry, monkeypatch):
    path = tmp_path / "placement.yaml"
    path.write_text("tiers:\n  24h: {node-selector: {pool: batch}, name: batch-spot}\n")
    monkeypatch.setenv("EXOSPHERE_PLACEMENT_FILE", str(path))
    deployment = Deployment.load()
    execution = resolve(_plan(tmp_path, registry, "24h"), deployment, registry)
    assert execution.node("extract").resources.pool == "batch-spot"
    assert execution.run.light.pool == "batch-spot"
    assert resolve(_plan(tmp_path, registry, "6h"), deployment, registry).run.light.pool == (
        "on-demand"
    )


def test_a_bad_placement_file_is_located(tmp_path, monkeypatch):
    path = tmp_path / "placement.yaml"
    path.write_text("tiers:\n  6h: {name: fast}\nstep-requests:\n  cpu: lots\n")
    monkeypatch.setenv("EXOSPHERE_PLACEMENT_FILE", str(path))
    with pytest.raises(PlacementError) as caught:
        Deployment.load()
    assert isinstance(caught.value, ExosphereError)
    (error,) = caught.value.errors
    assert str(error).startswith(f"{path}:4:8: step-requests.cpu:")
    path.write_text("tiers:\n  6h: {name: fast}\nstep-request:\n  cpu: 1\n")
    with pytest.raises(PlacementError) as caught:
        Deployment.load()  # the file changed: read again
    (error,) = caught.value.errors
    assert (error.line, error.column, error.hint) == (3, 1, "did you mean 'step-requests'?")


def test_every_problem_of_a_placement_file_is_located_and_typed(tmp_path, monkeypatch):
    """A pool is checked field by field, as Kubernetes takes it (label values are text,
    tolerations are mappings): a toleration ``5`` used to load and crash ``exosphere plan``,
    ``{a: [1]}`` reached pods, and only the first problem was reported."""
    path = tmp_path / "placement.yaml"
    path.write_text(
        "tiers:\n"
        "  6h: {node-selector: {zone: [1]}, tolerations: [5]}\n"
        "  7h: {}\n"
        "gpu: {tolerations: [{key: k, effect: Sometimes}]}\n"
        "gpu-image: 5\n"
        "step-requests: {cpu: -5, memory: lots}\n"
    )
    monkeypatch.setenv("EXOSPHERE_PLACEMENT_FILE", str(path))
    with pytest.raises(PlacementError) as caught:
        Deployment.load()
    found = {format_key_path(e.key_path): (e.line, e.message) for e in caught.value.errors}
    assert found == {
        "tiers.6h.node-selector.zone": (2, "wrong type for 'zone'"),
        "tiers.6h.tolerations[0]": (2, "wrong type for 'tolerations'"),
        "tiers.7h": (3, "unknown SLA tier '7h': expected one of 6h, 12h, 24h"),
        "gpu.tolerations[0].effect": (4, found["gpu.tolerations[0].effect"][1]),
        "gpu-image": (5, "expected an image name like 'repo:tag'"),
        "step-requests.cpu": (6, found["step-requests.cpu"][1]),
        "step-requests.memory": (6, found["step-requests.memory"][1]),
    }
    effect = next(e for e in caught.value.errors if e.key_path[-1] == "effect")
    assert "NoSchedule" in str(effect.expected) and "Sometimes" in str(effect.found)
    path.write_text(
        "tiers:\n  6h:\n    node-selector: {zone: eu-1}\n    tolerations:\n"
        "      - {key: exosphere.host/capacity, operator: Equal, value: spot, effect: NoSchedule}\n"
    )
    pool = Deployment.load().placement.pool("6h")
    assert pool.node_selector == {"zone": "eu-1"}
    path.write_text("tiers:\n  6h:\n    node-selector:\n    tolerations:\n    name: fast\n")
    blank = Deployment.load().placement.pool("6h")  # blank keys mean none, as they always did
    assert (blank.node_selector, blank.tolerations, blank.name) == ({}, (), "fast")
    path.write_text(
        "tiers:\n  6h:\n    node-selector: {zone: eu-1}\n    tolerations:\n"
        "      - {key: exosphere.host/capacity, operator: Equal, value: spot, effect: NoSchedule}\n"
    )
    pool = Deployment.load().placement.pool("6h")
    assert pool.tolerations == (
        {
            "key": "exosphere.host/capacity",
            "operator": "Equal",
            "value": "spot",
            "effect": "NoSchedule",
        },
    )


def test_the_deployment_is_loaded_once_and_again_when_it_changes(tmp_path, monkeypatch):
    monkeypatch.delenv("EXOSPHERE_PLACEMENT_FILE", raising=False)
    monkeypatch.setenv("EXOSPHERE_BATCH_TIERS", "24h")
    first = Deployment.load()
    assert Deployment.load() is first
    monkeypatch.setenv("EXOSPHERE_BATCH_TIERS", "12h,24h")
    assert Deployment.load().batch_api.tiers == frozenset({"12h", "24h"})
    prices = tmp_path / "prices.yaml"
    prices.write_text(EXAMPLE_PRICES.replace("example list prices", "ours"))
    monkeypatch.setenv("EXOSPHERE_PRICES_FILE", str(prices))
    loaded = Deployment.load()
    assert loaded.prices.source.startswith("ours") and loaded.prices_problem is None
    prices.write_text("pools: {}\n")
    broken = Deployment.load()
    assert broken.prices is None and f"{prices}:1:" in broken.prices_problem


@pytest.mark.parametrize("mode", ["always", "auto", "never"])
@pytest.mark.parametrize("sla", ["6h", "12h", "24h"])
def test_the_batch_api_decision(tmp_path, registry, mode, sla):
    entries = [satellite_entry(LLM, "extract", {**LLM_CONFIG, "batch": mode})]
    deployment = Deployment(batch_api=BatchPolicy(tiers=frozenset({"12h"})))
    execution = resolve(_plan(tmp_path, registry, sla, entries), deployment, registry)
    expected = mode == "always" or (mode == "auto" and sla == "12h")
    assert execution.node("extract").batch_api is expected
    assert execution.batch_api.tiers == frozenset({"12h"})


def test_a_plugins_bad_resources_are_located_at_its_uses(tmp_path, registry):
    planned = _plan(tmp_path, registry)
    real = registry.get(LLM)
    broken = dataclasses.replace(real, resources=SimpleNamespace(cpu="lots", memory=None, gpu=0))
    lookup = SimpleNamespace(get=lambda uses: broken if uses == LLM else registry.get(uses))
    with pytest.raises(ConfigErrors) as caught:
        resolve(planned, Deployment(), lookup)
    (error,) = caught.value.errors
    node = planned.node("extract")
    assert (error.file, error.line, error.column) == (planned.file, node.line, node.column)
    assert error.key_path[-1] == "uses" and "lots" in error.message and error.hint


def test_declared_resources_are_read_by_the_one_parser_and_located_at_the_declaration(
    tmp_path, registry
):
    """``satellite_ops.Resources`` checks nothing itself: resolve reads it with the loader's
    quantity parser (``1e3`` is a quantity there), uses its image and node selector, and names
    the ``@satellite``'s file:line when a value is not a quantity."""
    planned = _plan(tmp_path, registry)
    real = registry.get(LLM)

    def with_resources(resources):
        declared = dataclasses.replace(real, resources=resources)
        return SimpleNamespace(get=lambda uses: declared if uses == LLM else registry.get(uses))

    asked = Resources(cpu="1e3", gpu=1, image="vllm:latest", node_selector={"zone": "a"})
    request = resolve(planned, Deployment(), with_resources(asked)).node("extract").resources
    assert (request.cpu, request.gpu, request.placement.image) == (1000.0, 1, "vllm:latest")
    assert request.placement.node_selector == {"zone": "a"}

    with pytest.raises(ConfigErrors) as caught:
        resolve(planned, Deployment(), with_resources(Resources(cpu="lots")))
    (error,) = caught.value.errors
    assert "'lots' is not a Kubernetes quantity" in error.message
    assert f"fix resources= at {real.source} " in (error.hint or "")
    assert real.source.startswith(real.fn.__code__.co_filename + ":")


def test_the_estimate_reads_the_execution_plan(tmp_path, registry):
    execution = resolve(_plan(tmp_path, registry, "6h"), Deployment(), registry)
    node = execution.node("extract")
    odd = dataclasses.replace(
        node,
        chunk=ChunkPolicy(3, 3, 1),
        resources=dataclasses.replace(node.resources, cpu=1.25, gpu=0),
        batch_api=True,
    )
    hand_made = dataclasses.replace(execution, nodes={"extract": odd})
    table = load_prices(None)
    (line,) = [x for x in estimate_lines(hand_made, table) if x.startswith("    extract")]
    assert "1.25 CPU:" in line and "334 step(s) of up to 3 item(s)" in line
    assert "batch price" in line
    assert Settings().batch_tier_names == frozenset(TIERS) & {"24h"}  # the default tiers


def test_the_catalog_resolves_each_plan_and_skips_one_that_cannot(tmp_path, registry):
    from exosphere_dagster.resolve.catalog import load_catalog

    hook = satellite_entry(WEBHOOK, "send", {"url": "http://127.0.0.1:9/hook"})
    good = write_cluster(tmp_path, "good.yml", cluster("test/good", [hook], sla="12h"))
    bad = write_cluster(
        tmp_path, "bad.yml", cluster("test/bad", [satellite_entry(LLM, "x", LLM_CONFIG)])
    )
    broken = dataclasses.replace(
        registry.get(LLM), resources=SimpleNamespace(cpu="lots", memory=None, gpu=0)
    )
    lookup = SimpleNamespace(get=lambda uses: broken if uses == LLM else registry.get(uses))
    catalog = load_catalog([good, bad], lookup, log=False, deployment=Deployment())
    assert [p.identifier for p in catalog.plans] == ["test/good"]
    (job,) = catalog.executions
    assert catalog.executions[job].run.priority == 20
    (error,) = catalog.broken[str(bad)]
    assert error.key_path[-1] == "uses" and error.line > 1


@pytest.mark.parametrize(
    ("module", "line", "forbidden"),
    [
        ("exosphere_dagster/translate/ops.py", "from yaml_loader.tiers import tier", "tiers"),
        ("exosphere_dagster/runtime/items.py", "import yaml_loader.quantities", "quantities"),
        (
            "exosphere_dagster/entry/launch.py",
            "from exosphere_dagster.resolve.settings import settings",
            "resolve.settings",
        ),
    ],
)
def test_the_one_home_contract_fails_when_a_later_stage_reads_a_tier(
    tmp_path, module, line, forbidden
):
    from test_architecture import _lint_broken_copy

    result = _lint_broken_copy(tmp_path, module, f"{line}  # noqa: the violation under test")
    assert result.returncode != 0
    assert "read in resolve only BROKEN" in result.stdout.replace("\n", " ")
    assert f"{module.removesuffix('.py').replace('/', '.')} -> " in result.stdout
    assert forbidden in result.stdout


def test_a_retry_after_waits_longer_never_past_the_cap():
    from yaml_loader.ir import RetrySettings

    retry = RetrySettings(retries=5, delay=1.0, backoff=2.0, max_delay=30.0)
    assert retry.wait_for(3) == retry.wait_before(3) == 4.0
    assert retry.wait_for(3, 10.0) == 10.0  # the server asked for longer
    assert retry.wait_for(3, 0.5) == 4.0  # never shorter than the backoff
    assert retry.wait_for(3, 3600.0) == 30.0  # capped
    assert retry.wait_for(3, -1.0) == 4.0

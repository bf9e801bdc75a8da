"""What a step costs: the price table set in the deployment, and the cost of a step from what it
held (wall seconds x the CPU, GPU and memory it requested on its pool, the usual Kubernetes
allocation, as Kubecost bills it) and what it asked of a provider model (tokens, at the sync or
the Batch API price). docs/cost.md explains the model; ``exosphere plan`` prints an estimate
per 1,000 items from :func:`plan_cost_lines`.

The table is a YAML file named by ``EXOSPHERE_PRICES_FILE``; without one the example table
shipped beside this module (``prices.example.yaml``) is used and says so wherever a cost shows.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError

from exosphere_dagster.placement import (
    Placement,
    PlacementPolicy,
    k8s_tag,
    placement_of,
    satellite_k8s_config,
    step_resources,
)
from yaml_loader.errors import ConfigError, ConfigErrors
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.models import StrictModel
from yaml_loader.source import read_yaml_file
from yaml_loader.validation import translate

PRICES_FILE_ENV = "EXOSPHERE_PRICES_FILE"
EXAMPLE_PRICES = Path(__file__).with_name("prices.example.yaml")
SELF_HOSTED_ENGINES = frozenset({"vllm"})  # engines that never bill tokens
MILLION = 1_000_000


class PoolPrice(StrictModel):
    """USD per hour of what a step requests on one pool."""

    cpu_hour: float = Field(0.0, ge=0, description="USD per requested CPU core per hour.")
    gpu_hour: float = Field(0.0, ge=0, description="USD per requested GPU per hour.")
    memory_gib_hour: float = Field(0.0, ge=0, description="USD per requested GiB per hour.")


class ModelPrice(StrictModel):
    """USD per million tokens of a provider model; batch prices apply to Batch API tokens."""

    input: float = Field(ge=0, description="Prompt tokens, synchronous calls.")
    output: float = Field(ge=0, description="Completion tokens, synchronous calls.")
    batch_input: float | None = Field(None, ge=0, description="Prompt tokens by batch.")
    batch_output: float | None = Field(None, ge=0, description="Completion tokens by batch.")


class Assumptions(StrictModel):
    """What ``exosphere plan`` assumes per item; replace with what your runs measure."""

    seconds_per_item: float = Field(1.0, gt=0)
    prompt_tokens_per_item: float = Field(500.0, ge=0)
    completion_tokens_per_item: float = Field(250.0, ge=0)
    gpu_tokens_per_second: dict[str, float] = Field(
        default_factory=lambda: {"6h": 200.0, "12h": 600.0, "24h": 1200.0}
    )


class PriceTable(StrictModel):
    """The price table: pools by name, provider models by name, the plan's assumptions."""

    currency: Literal["USD"] = "USD"
    pools: dict[str, PoolPrice]
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    self_hosted: list[str] = Field(  # served by a server you run (OpenAI-compatible): no tokens
        default_factory=list, description="Models you serve yourself; their cost is compute."
    )
    estimate: Assumptions = Field(default_factory=Assumptions)
    _source: str = PrivateAttr("")

    @property
    def source(self) -> str:
        """Where the prices come from, as shown beside every cost."""
        return self._source


class PriceTableError(Exception):
    """Every problem of a price file, each with file:line:col and key path."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        count = len(errors)
        super().__init__(
            f"{count} error{'s' if count != 1 else ''} in the price table "
            f"(${PRICES_FILE_ENV}):\n" + "\n".join(str(e) for e in errors)
        )


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The table at ``path``, else ``$EXOSPHERE_PRICES_FILE``, else the example table."""
    chosen = path or os.environ.get(PRICES_FILE_ENV) or EXAMPLE_PRICES
    file = str(chosen)
    try:
        if not Path(chosen).is_file():
            raise ConfigErrors(
                [ConfigError(file, 1, 1, (), "no such file", hint=f"check {PRICES_FILE_ENV}")]
            )
        if not Path(chosen).read_text(encoding="utf-8", errors="replace").strip():
            raise ConfigErrors(
                [ConfigError(file, 1, 1, (), "file is empty", expected="a mapping with 'pools'")]
            )
        data, source = read_yaml_file(chosen)
    except ConfigErrors as exc:
        raise PriceTableError(exc.errors) from None
    if not isinstance(data, dict):
        error = source.error((), "a price table must be a mapping", expected="key 'pools'")
        raise PriceTableError([dataclasses.replace(error, found=type(data).__name__)])
    try:
        table = PriceTable.model_validate(data)
    except ValidationError as exc:
        raise PriceTableError(translate(exc, PriceTable, source)) from None
    label = "example prices (set EXOSPHERE_PRICES_FILE)" if Path(chosen) == EXAMPLE_PRICES else file
    table._source = label
    return table


_CACHE: dict[tuple[str, float], PriceTable | PriceTableError] = {}
_LOCK = threading.Lock()


def step_prices() -> PriceTable | PriceTableError:
    """The table for steps, read once per process and file version. A broken table never fails
    a run: the step records no cost and logs the table's errors instead."""
    path = os.environ.get(PRICES_FILE_ENV) or str(EXAMPLE_PRICES)
    try:
        key = (path, Path(path).stat().st_mtime)
    except OSError:
        key = (path, -1.0)
    with _LOCK:
        if key not in _CACHE:
            _CACHE.clear()  # one table per process: the newest version of the file
            try:
                _CACHE[key] = load_prices(path)
            except PriceTableError as exc:
                _CACHE[key] = exc
        return _CACHE[key]


# -- what a step used ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Tokens:
    """A step's tokens; the batch counts are the part answered through a Batch API."""

    prompt: float = 0.0
    completion: float = 0.0
    batch_prompt: float = 0.0
    batch_completion: float = 0.0

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, float]) -> Tokens:
        return cls(
            prompt=metrics.get("llm/prompt_tokens", 0.0),
            completion=metrics.get("llm/completion_tokens", 0.0),
            batch_prompt=metrics.get("llm/batch_prompt_tokens", 0.0),
            batch_completion=metrics.get("llm/batch_completion_tokens", 0.0),
        )


@dataclass(frozen=True)
class StepCost:
    """A step's cost; ``compute_usd`` is None when its pool has no price in the table."""

    placement: Placement
    seconds: float
    compute_usd: float | None
    tokens_usd: float | None  # None: no token price (self-hosted, or the model is not listed)
    notes: tuple[str, ...] = ()

    @property
    def cost_usd(self) -> float:
        return (self.compute_usd or 0.0) + (self.tokens_usd or 0.0)

    def metrics(self) -> dict[str, float]:
        """Numbers for the step's metadata; the summary adds them up over the run."""
        p, s = self.placement, self.seconds
        out = {
            "compute_seconds": round(s, 4),
            "cpu_seconds": round(s * p.cpu, 4),
            "gpu_seconds": round(s * p.gpu, 4),
        }
        if self.tokens_usd is not None:
            out["cost/tokens_usd"] = round(self.tokens_usd, 10)
        if self.compute_usd is None:  # no cost_usd: a part would pass for the whole
            out["cost/unpriced_steps"] = 1.0
        else:
            out["cost_usd"] = round(self.cost_usd, 10)
            out["cost/compute_usd"] = round(self.compute_usd, 10)
        return out


def compute_usd(placement: Placement, seconds: float, prices: PriceTable) -> float | None:
    """Wall seconds x requests x the pool's hourly prices (None: the pool is not priced)."""
    price = prices.pools.get(placement.pool)
    if price is None:
        return None
    hourly = (
        placement.cpu * price.cpu_hour
        + placement.gpu * price.gpu_hour
        + placement.memory_gib * price.memory_gib_hour
    )
    return hourly * seconds / 3600


def tokens_usd(tokens: Tokens, model: ModelPrice) -> float:
    """Sync tokens at the sync price, Batch API tokens at the batch price (sync if unset)."""
    batch_in = model.input if model.batch_input is None else model.batch_input
    batch_out = model.output if model.batch_output is None else model.batch_output
    return (
        (tokens.prompt - tokens.batch_prompt) * model.input
        + (tokens.completion - tokens.batch_completion) * model.output
        + tokens.batch_prompt * batch_in
        + tokens.batch_completion * batch_out
    ) / MILLION


def model_price(engine: str | None, model: str | None, prices: PriceTable) -> ModelPrice | None:
    """The token price of a provider model; None for a self-hosted one."""
    if not model or (engine or "") in SELF_HOSTED_ENGINES or model in prices.self_hosted:
        return None
    return prices.models.get(model)


def step_cost(
    placement: Placement,
    seconds: float,
    prices: PriceTable,
    tokens: Tokens = Tokens(),
    engine: str | None = None,
    model: str | None = None,
) -> StepCost:
    """What one step cost: its pool's compute plus, for a provider model, its tokens."""
    notes: list[str] = []
    compute = compute_usd(placement, seconds, prices)
    if compute is None:
        listed = ", ".join(sorted(prices.pools)) or "none"
        notes.append(f"pool '{placement.pool or '(none)'}' has no price (priced: {listed})")
    price = model_price(engine, model, prices)
    spent = tokens.prompt or tokens.completion
    known = (engine or "") in SELF_HOSTED_ENGINES or model in prices.self_hosted
    if price is None and spent and model and not known:
        notes.append(f"model '{model}' has no token price: counted as self-hosted")
    return StepCost(
        placement=placement,
        seconds=seconds,
        compute_usd=compute,
        tokens_usd=tokens_usd(tokens, price) if price is not None else None,
        notes=tuple(notes),
    )


def engine_and_model(config: Any, config_model: Any) -> tuple[str | None, str | None]:
    """A satellite's ``engine`` and ``model`` from its node config, else its model's defaults
    (templated or absent values give None)."""
    values: dict[str, str | None] = {}
    fields = getattr(config_model, "model_fields", {}) or {}
    for name in ("engine", "model"):
        value = config.get(name) if isinstance(config, Mapping) else None
        if value is None and name in fields:
            value = fields[name].default
        values[name] = value if isinstance(value, str) else None
    return values["engine"], values["model"]


@dataclass(frozen=True)
class StepRecord:
    """What a step puts in its metadata about its cost (numbers summed by the summary)."""

    metrics: dict[str, float]
    pool: str
    prices: str  # where the prices came from
    notes: tuple[str, ...] = ()


def record_step(
    tags: Mapping[str, Any],
    seconds: float,
    metrics: Mapping[str, float] | None = None,
    engine: str | None = None,
    model: str | None = None,
) -> StepRecord:
    """The cost record of a step that ran ``seconds`` with these op tags and metrics. Never
    raises: a broken price table or placement tag leaves the step unpriced, with a note."""
    seconds = round(seconds, 4)  # as shown, so that its cost can be checked from the metadata
    try:
        placement = placement_of(tags)
    except (ValueError, TypeError, AttributeError) as exc:
        placement, notes = Placement(), (f"placement tag unreadable: {exc}",)
    else:
        notes = ()
    prices = step_prices()
    if isinstance(prices, PriceTableError):
        unpriced = StepCost(placement, seconds, None, None).metrics()
        return StepRecord(unpriced, placement.pool, "none", (*notes, str(prices)))
    tokens = Tokens.from_metrics(metrics or {})
    cost = step_cost(placement, seconds, prices, tokens, engine, model)
    return StepRecord(cost.metrics(), placement.pool, prices.source, (*notes, *cost.notes))


# -- the estimate `exosphere plan` prints ---------------------------------------------------------
ESTIMATE_ITEMS = 1000


def plan_cost_lines(
    plan: ClusterPlan,
    registry: Any = None,
    prices: PriceTable | None = None,
    policy: PlacementPolicy | None = None,
) -> list[str]:
    """The lines ``exosphere plan`` prints under a cluster: its cost per 1,000 items, per
    satellite, with the assumptions the estimate rests on (the price table's ``estimate``)."""
    try:
        prices = prices or load_prices()
    except PriceTableError as exc:
        return ["  cost per 1,000 items: unknown, the price table has errors:"] + [
            "    " + line for line in str(exc).splitlines()[1:]
        ]
    if registry is None:
        from exosphere_dagster.catalog import registry_with_plugins

        registry = registry_with_plugins()
    policy = policy or PlacementPolicy.load()
    rows, total, missing = [], 0.0, False
    for node in plan.nodes:
        cost, basis = _node_estimate(plan, node, registry.get(node.uses), prices, policy)
        missing = missing or cost.compute_usd is None
        total += cost.cost_usd
        p = cost.placement
        held = f"{p.cpu:g} CPU" + (f" + {p.gpu:g} GPU" if p.gpu else "")
        price = "pool not priced" if cost.compute_usd is None else f"${cost.cost_usd:.4f}"
        rows.append(f"    {node.id}: {price}  [{p.pool or '(no pool)'}, {held}; {basis}]")
    head = f"  cost estimate per {ESTIMATE_ITEMS:,} items: ${total:.4f}"
    head += " (incomplete)" if missing else ""
    a = prices.estimate
    return [
        f"{head}  (prices: {prices.source})",
        *rows,
        f"    assumes: each run input reaches every satellite once (no fan-out); wall seconds x "
        f"requests x pool price; {a.seconds_per_item:g} s per item unless an LLM; failure and "
        "log satellites not counted",
    ]


def _node_estimate(
    plan: ClusterPlan,
    node: SatelliteNode,
    definition: Any,
    prices: PriceTable,
    policy: PlacementPolicy,
) -> tuple[StepCost, str]:
    """One satellite's cost for ESTIMATE_ITEMS items, and what the number assumes."""
    from satellite_ops.llm_batch_mode import wants_batch

    a, n = prices.estimate, ESTIMATE_ITEMS
    resources = step_resources(node, definition)
    placement = placement_of(k8s_tag(satellite_k8s_config(plan, resources, policy)))
    engine, model = engine_and_model(node.config, definition.config_model)
    if not (definition.batched and model):
        seconds = n * a.seconds_per_item
        return step_cost(placement, seconds, prices), f"{a.seconds_per_item:g} s/item"
    prompt, completion = n * a.prompt_tokens_per_item, n * a.completion_tokens_per_item
    price = model_price(engine, model, prices)
    if price is None:  # self-hosted: the GPU's time at the tier's batch sizes
        rate = a.gpu_tokens_per_second.get(plan.sla.name) or min(a.gpu_tokens_per_second.values())
        seconds = completion / rate / max(placement.gpu, 1)
        tokens = Tokens(prompt, completion)
        basis = (
            f"self-hosted {model}: {a.completion_tokens_per_item:g} completion tokens/item at "
            f"{rate:g} tokens/s per GPU ({plan.sla.name} batches)"
        )
    else:
        mode = node.config.get("batch", "auto") if isinstance(node.config, Mapping) else "auto"
        batch = wants_batch(str(mode), engine or "", plan.sla.name)
        seconds = n * a.seconds_per_item
        tokens = Tokens(prompt, completion, *((prompt, completion) if batch else (0, 0)))
        basis = (
            f"{model}: {a.prompt_tokens_per_item:g} + {a.completion_tokens_per_item:g} tokens/"
            f"item at {'batch' if batch else 'sync'} prices, {a.seconds_per_item:g} s/item held"
        )
    return step_cost(placement, seconds, prices, tokens, engine, model), basis

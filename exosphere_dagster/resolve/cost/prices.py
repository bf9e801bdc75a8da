"""What a run costs: a price table the deployment sets (``EXOSPHERE_PRICES_FILE``), and the cost
of each step from what it measured.

Two bills, priced two ways (docs/cost.md):

* compute: Kubernetes bills the capacity a pod reserves, used or not. A step costs its wall
  seconds x its requests (CPU, GPU, memory: its :class:`~exosphere_dagster.resolve.placement.
  Placement`, what its ``dagster-k8s/config`` tag is written from) x the hourly prices of its
  node pool (the ``exosphere.host/pool`` label: the tier's capacity, ``on-demand`` or ``spot``,
  unless the placement file names it). That is the allocation Kubecost and
  OpenCost report per pod. The same requests price a local run, as if it ran on the cluster.
* tokens: a provider model (``engine``/``model`` of the satellite's config) has prices per
  million input and output tokens, synchronous and through its Batch API (``llm/batch_*``
  tokens). A self-hosted model has no token price: its cost is the compute it runs on (a vLLM
  step's GPU pod; an OpenAI-compatible server of your own is billed by its own pool, which
  exosphere cannot see).

Without a prices file the example table below applies, and every cost says so: its figures are
examples of list prices, not the prices of any deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, model_validator

from exosphere_dagster.errors import DeploymentError
from yaml_loader.errors import ConfigErrors
from yaml_loader.models import StrictModel
from yaml_loader.quantities import QuantityError, parse_quantity
from yaml_loader.source import read_yaml_file, read_yaml_text
from yaml_loader.validation import translate

if TYPE_CHECKING:
    from exosphere_dagster.resolve.execution_plan import ResourceRequest

COST_TAG = "exosphere/cost_usd"
EXAMPLE_SOURCE = "example prices built into exosphere (set EXOSPHERE_PRICES_FILE)"
EXAMPLE_PRICES = """\
source: example list prices, AWS us-east-1 and OpenAI, late 2026 (not your bill)
pools:             # USD per requested unit-hour; keyed by the pool name (tier capacity)
  on-demand: {cpu-hour: 0.048, gpu-hour: 1.006, memory-gib-hour: 0.0}   # m5.xlarge $0.192/h / 4
  spot:      {cpu-hour: 0.0125, gpu-hour: 0.40, memory-gib-hour: 0.0}   # about 0.05/h / 4
models:            # USD per million tokens; batch: through the provider's Batch API (24h)
  - {engine: openai, model: gpt-4o-mini, sync: {input: 0.15, output: 0.60},
     batch: {input: 0.075, output: 0.30}}
  - {engine: openai, model: gpt-4o, sync: {input: 2.50, output: 10.00},
     batch: {input: 1.25, output: 5.00}}
  - {engine: vllm, model: "*", self-hosted: true}
"""


class PoolPrice(StrictModel):
    """Hourly prices of one node pool, per requested unit."""

    cpu_hour: float = Field(ge=0, description="USD per requested vCPU-hour.")
    gpu_hour: float = Field(0.0, ge=0, description="USD per requested GPU-hour.")
    memory_gib_hour: float = Field(0.0, ge=0, description="USD per requested GiB-hour.")


class TokenPrice(StrictModel):
    input: float = Field(ge=0, description="USD per million prompt tokens.")
    output: float = Field(ge=0, description="USD per million completion tokens.")


class ModelPrice(StrictModel):
    """Token prices of one model (``model: "*"``: every model of the engine)."""

    engine: str
    model: str = "*"
    sync: TokenPrice | None = None
    batch: TokenPrice | None = None
    self_hosted: bool = False

    @model_validator(mode="after")
    def _priced_once(self) -> ModelPrice:
        if self.self_hosted and (self.sync or self.batch):
            raise ValueError("a self-hosted model has no token price: drop sync/batch")
        if not self.self_hosted and self.sync is None:
            raise ValueError("give 'sync:' token prices, or 'self-hosted: true'")
        return self


class Estimate(StrictModel):
    """What ``exosphere plan``'s estimate assumes; replace with numbers a run measured."""

    items: int = Field(1000, ge=1)
    workers: int = Field(16, ge=1, description="Steps at once (EXOSPHERE_STEP_PODS).")
    seconds_per_item: float = Field(0.2, ge=0, description="A satellite's time per item.")
    llm_seconds_per_item: float = Field(1.0, ge=0, description="An LLM batch's per item.")
    step_start_seconds: float = Field(10.0, ge=0, description="Pod start, billed per step.")
    prompt_tokens: int = Field(500, ge=0)
    completion_tokens: int = Field(200, ge=0)


class PriceTable(StrictModel):
    source: str = Field(description="Where the figures come from; printed beside every cost.")
    pools: dict[str, PoolPrice] = Field(min_length=1)
    models: list[ModelPrice] = Field(default_factory=list)
    estimate: Estimate = Field(default_factory=Estimate)

    def model(self, engine: str, model: str) -> ModelPrice | None:
        """The model's row, else its engine's ``"*"`` row."""
        rows = {(m.engine, m.model): m for m in self.models}
        return rows.get((engine, model)) or rows.get((engine, "*"))


class PriceTableError(DeploymentError):
    """The prices file cannot be used; the message lists every problem with its line."""


def load_prices(path: str | Path | None) -> PriceTable:
    """The table in ``path`` (``None``: the example table, its source saying so)."""
    try:
        data, source = (
            read_yaml_file(path, "a price table (docs/cost.md)")
            if path
            else read_yaml_text(EXAMPLE_PRICES, "<ex>")
        )
        if not isinstance(data, dict):
            raise ConfigErrors([source.error((), "a prices file must be a mapping")])
        table = PriceTable.model_validate(data)
    except ConfigErrors as exc:
        raise PriceTableError(_errors_text(path, exc)) from None
    except ValidationError as exc:
        errors = ConfigErrors(translate(exc, PriceTable, source))
        raise PriceTableError(_errors_text(path, errors)) from None
    return table if path else table.model_copy(update={"source": EXAMPLE_SOURCE})


def _errors_text(path: str | Path | None, exc: ConfigErrors) -> str:
    count = len(exc.errors)
    lines = "\n".join(str(e) for e in exc.errors)
    return (
        f"{count} error{'s' if count != 1 else ''} in the prices file {path} "
        f"(EXOSPHERE_PRICES_FILE, docs/cost.md):\n{lines}"
    )


# -- what a step reserves ----------------------------------------------------------------------
def quantity(value: Any) -> float:
    """A Kubernetes quantity as a number (``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824), by the
    one parser the cluster file is checked with (yaml_loader/quantities.py)."""
    try:
        return float(parse_quantity(value))
    except QuantityError:
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from None


# -- what a step costs -------------------------------------------------------------------------
@dataclass(frozen=True)
class StepCost:
    pool: str
    seconds: float
    cpu_seconds: float
    gpu_seconds: float
    compute_usd: float
    tokens_usd: float
    problems: tuple[str, ...] = ()

    @property
    def cost_usd(self) -> float:
        return self.compute_usd + self.tokens_usd

    def metrics(self) -> dict[str, float]:
        """The numbers a step reports and the summary adds up."""
        return {
            "compute/seconds": round(self.seconds, 4),
            "compute/cpu_seconds": round(self.cpu_seconds, 4),
            "compute/gpu_seconds": round(self.gpu_seconds, 4),
            "cost/compute_usd": round(self.compute_usd, 8),
            "cost/tokens_usd": round(self.tokens_usd, 8),
            "cost_usd": round(self.cost_usd, 8),
        }


def compute_cost(
    table: PriceTable, where: ResourceRequest, seconds: float
) -> tuple[float, str | None]:
    """USD of holding ``where`` (a resolved pod's requests and pool) for ``seconds``; (0, why)
    when its pool has no price."""
    price = table.pools.get(where.pool)
    if price is None:
        known = ", ".join(sorted(table.pools))
        return 0.0, (
            f"no price for node pool {where.pool or '(unnamed)'!r} (priced: {known}): add it "
            "under 'pools:' of the prices file"
        )
    hourly = (
        where.cpu * price.cpu_hour
        + where.gpu * price.gpu_hour
        + where.memory_gib * price.memory_gib_hour
    )
    return seconds * hourly / 3600, None


def token_cost(
    table: PriceTable, model: tuple[str, str] | None, metrics: Mapping[str, float]
) -> tuple[float, str | None]:
    """USD of the step's tokens: batch tokens at the batch price, the rest at the sync price."""
    prompt = metrics.get("llm/prompt_tokens", 0.0)
    completion = metrics.get("llm/completion_tokens", 0.0)
    if not (prompt or completion):
        return 0.0, None
    engine, name = model or ("?", "?")
    price = table.model(engine, name)
    if price is None:
        return 0.0, (
            f"no price for model {engine}/{name}: its {prompt + completion:.0f} tokens are not "
            "priced; add it under 'models:' (with 'self-hosted: true' for a model you serve)"
        )
    if price.self_hosted or price.sync is None:
        return 0.0, None
    batch_in = metrics.get("llm/batch_prompt_tokens", 0.0)
    batch_out = metrics.get("llm/batch_completion_tokens", 0.0)
    batch = price.batch or price.sync
    usd = (
        max(0.0, prompt - batch_in) * price.sync.input
        + max(0.0, completion - batch_out) * price.sync.output
        + batch_in * batch.input
        + batch_out * batch.output
    ) / 1e6
    note = None
    if (batch_in or batch_out) and price.batch is None:
        note = f"{engine}/{name} has no batch price: its batch tokens are priced as sync"
    return usd, note


def step_cost(
    table: PriceTable,
    where: ResourceRequest,  # NodePlan.resources, RunPolicy.light
    seconds: float,
    metrics: Mapping[str, float],
    model: tuple[str, str] | None = None,
) -> StepCost:
    compute, no_pool = compute_cost(table, where, seconds)
    tokens, no_model = token_cost(table, model, metrics)
    return StepCost(
        pool=where.pool,
        seconds=seconds,
        cpu_seconds=seconds * where.cpu,
        gpu_seconds=seconds * where.gpu,
        compute_usd=compute,
        tokens_usd=tokens,
        problems=tuple(p for p in (no_pool, no_model) if p),
    )


def model_of(config: Any, config_model: Any = None) -> tuple[str, str] | None:
    """(engine, model) of a satellite's config, defaults from its config model; None when the
    satellite names no model (or a template does, unknown until run time)."""
    if not isinstance(config, Mapping):
        return None
    fields = getattr(config_model, "model_fields", {}) or {}

    def value(key: str) -> Any:
        found = config.get(key)
        if found is None and key in fields:
            found = fields[key].default
        return found if isinstance(found, str) else None

    model = value("model")
    return (value("engine") or "", model) if model else None


SUMMED = (
    "compute/seconds",
    "compute/cpu_seconds",
    "compute/gpu_seconds",
    "cost/compute_usd",
    "cost/tokens_usd",
    "cost_usd",
    "llm/prompt_tokens",
    "llm/completion_tokens",
    "llm/batch_prompt_tokens",
    "llm/batch_completion_tokens",
)


def add_up(metrics: list[Mapping[str, float]]) -> dict[str, float]:
    """The run's totals of the summed step numbers (keys no step reported are left out)."""
    totals: dict[str, float] = {}
    for one in metrics:
        for key in SUMMED:
            if key in one:
                totals[key] = totals.get(key, 0.0) + float(one[key])
    return {k: round(v, 8 if "usd" in k else 4) for k, v in totals.items()}

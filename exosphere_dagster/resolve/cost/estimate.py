"""``exosphere plan``'s cost estimate per 1,000 items: what a cluster's tier decides (chunk and
batch sizes, hence steps; node pool, hence prices; Batch API or not, hence token prices), priced
with the deployment's table under the assumptions of its ``estimate:`` section, which the
estimate prints. A run's measured cost is in its summary (``exosphere/cost_usd``)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from exosphere_dagster.resolve.cost.prices import (
    PriceTable,
    PriceTableError,
    compute_cost,
    token_cost,
)
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan
from exosphere_dagster.resolve.placement import PlacementPolicy
from exosphere_dagster.resolve.resolve import resolve
from yaml_loader.ir import ClusterPlan


def _money(usd: float) -> str:
    return f"${usd:,.4f}" if usd < 1 else f"${usd:,.2f}"


def plan_cost_lines(
    plan: ClusterPlan,
    registry: Any,
    table: PriceTable | None = None,
    policy: PlacementPolicy | None = None,
) -> list[str]:
    """:func:`estimate_lines` of ``plan`` resolved under the process's deployment (``policy``
    replacing its placement)."""
    deployment = Deployment.load()
    if policy is not None:
        deployment = replace(deployment, placement=policy)
    table = table or deployment.prices
    if table is None:
        raise PriceTableError(deployment.prices_problem or "no prices table")
    return estimate_lines(resolve(plan, deployment, registry), table)


def estimate_lines(execution: ExecutionPlan, table: PriceTable) -> list[str]:
    """The lines ``exosphere plan`` prints: per satellite of the main branch, its steps for
    ``estimate.items`` items, pool and requests, compute and token cost; the total; and what
    the estimate assumes. Everything the tier decides is read from ``execution``."""
    plan = execution.plan
    guess = table.estimate
    items = guess.items
    lines = [f"  cost estimate per {items:,} items (prices: {table.source}):"]
    total = 0.0
    problems: list[str] = []
    for planned in plan.nodes:
        node = execution.node(planned.id)
        where = node.resources
        size = node.chunk.size(items, guess.workers)
        steps = math.ceil(items / size)
        if node.batched:  # one call per chunk: the batch's time grows with its items
            busy = size * guess.llm_seconds_per_item
        else:
            busy = math.ceil(size / node.concurrency) * guess.seconds_per_item
        seconds = guess.step_start_seconds + busy
        compute, no_pool = compute_cost(table, where, steps * seconds)
        model = node.model
        batch = model is not None and bool(node.batch_api)
        tokens = 0.0
        if model is not None:
            used = {
                "llm/prompt_tokens": float(items * guess.prompt_tokens),
                "llm/completion_tokens": float(items * guess.completion_tokens),
            }
            if batch:
                used["llm/batch_prompt_tokens"] = used["llm/prompt_tokens"]
                used["llm/batch_completion_tokens"] = used["llm/completion_tokens"]
            tokens, no_model = token_cost(table, model, used)
            problems.extend(p for p in (no_model,) if p)
        problems.extend(p for p in (no_pool,) if p)
        total += compute + tokens
        asks = f"{where.cpu:g} CPU" + (f" + {where.gpu:g} GPU" if where.gpu else "")
        text = (
            f"    {planned.id}  pool {where.pool}, {asks}: {steps} step(s) of up to {size} "
            f"item(s), ~{seconds:,.0f} s each: {_money(compute)} compute"
        )
        row = table.model(*model) if model is not None else None
        if model is not None and row is not None and row.self_hosted:
            text += f" ({model[0]}/{model[1]} is self-hosted: no token price)"
        elif model is not None:
            price = "batch" if batch else "sync"
            text += f" + {_money(tokens)} tokens ({model[0]}/{model[1]}, {price} price)"
        lines.append(text)
    lines.append(f"    total: {_money(total)} per {items:,} items ({execution.run.tier} tier)")
    lines.extend(f"    warning: {p}" for p in dict.fromkeys(problems))
    lines.append(
        f"    assumes: {items:,} items reach every satellite (no fan-out), {guess.workers} "
        f"steps at once, {guess.step_start_seconds:g} s to start a step, "
        f"{guess.seconds_per_item:g} s per item (LLM: {guess.llm_seconds_per_item:g} s per item "
        f"of a batch), {guess.prompt_tokens} prompt + {guess.completion_tokens} completion "
        "tokens per LLM item; set them under 'estimate:' in the prices file"
    )
    return lines

"""``exosphere plan``'s cost estimate per 1,000 items: what a cluster's tier decides (chunk and
batch sizes, hence steps; node pool, hence prices; Batch API or not, hence token prices), priced
with the deployment's table under the assumptions of its ``estimate:`` section, which the
estimate prints. A run's measured cost is in its summary (``exosphere/cost_usd``)."""

from __future__ import annotations

import math
from typing import Any

from exosphere_dagster.resolve.chunking import run_chunk_size
from exosphere_dagster.resolve.cost.prices import (
    PriceTable,
    compute_cost,
    model_of,
    price_table,
    reservation,
    token_cost,
)
from exosphere_dagster.resolve.placement import PlacementPolicy, satellite_placement, step_resources
from exosphere_dagster.resolve.segments import cut_segments
from exosphere_dagster.resolve.settings import settings
from yaml_loader.ir import ClusterPlan, SatelliteNode


def _through_batch_api(plan: ClusterPlan, node: SatelliteNode, definition: Any) -> bool:
    """Whether the node's prompts go through a provider Batch API (llm.py's ``batch:``)."""
    config = node.config if isinstance(node.config, dict) else {}
    fields = getattr(definition.config_model, "model_fields", {})
    mode = config.get("batch", fields["batch"].default if "batch" in fields else None)
    engine = config.get("engine", fields["engine"].default if "engine" in fields else None)
    if engine != "openai" or mode not in ("auto", "always"):
        return False
    return mode == "always" or plan.sla.name in settings().batch_tier_names


def _money(usd: float) -> str:
    return f"${usd:,.4f}" if usd < 1 else f"${usd:,.2f}"


def plan_cost_lines(
    plan: ClusterPlan,
    registry: Any,
    table: PriceTable | None = None,
    policy: PlacementPolicy | None = None,
) -> list[str]:
    """The lines ``exosphere plan`` prints: per satellite of the main branch, its steps for
    ``estimate.items`` items, pool and requests, compute and token cost; the total; and what
    the estimate assumes."""
    table = table or price_table()
    policy = policy or PlacementPolicy.load()
    guess = table.estimate
    items = guess.items
    definitions = {n.id: registry.get(n.uses) for n in plan.nodes}
    batched = {}
    for segment in cut_segments(plan, registry):
        together = any(definitions[n.id].batched for n in segment.nodes if n.id in definitions)
        batched.update((n.id, together) for n in segment.nodes)
    lines = [f"  cost estimate per {items:,} items (prices: {table.source}):"]
    total = 0.0
    problems: list[str] = []
    for node in plan.nodes:
        definition = definitions[node.id]
        where = reservation(satellite_placement(plan, step_resources(node, definition), policy))
        in_batches = batched.get(node.id, False)
        size = run_chunk_size(items, plan.sla.name, guess.workers, batched=in_batches)
        steps = math.ceil(items / size)
        if definition.batched:  # one call per chunk: the batch's time grows with its items
            busy = size * guess.llm_seconds_per_item
        else:
            at_once = node.concurrency or definition.max_concurrency
            busy = math.ceil(size / at_once) * guess.seconds_per_item
        seconds = guess.step_start_seconds + busy
        compute, no_pool = compute_cost(table, where, steps * seconds)
        model = model_of(node.config, definition.config_model)
        batch = model is not None and _through_batch_api(plan, node, definition)
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
            f"    {node.id}  pool {where.pool}, {asks}: {steps} step(s) of up to {size} "
            f"item(s), ~{seconds:,.0f} s each: {_money(compute)} compute"
        )
        row = table.model(*model) if model is not None else None
        if model is not None and row is not None and row.self_hosted:
            text += f" ({model[0]}/{model[1]} is self-hosted: no token price)"
        elif model is not None:
            price = "batch" if batch else "sync"
            text += f" + {_money(tokens)} tokens ({model[0]}/{model[1]}, {price} price)"
        lines.append(text)
    lines.append(f"    total: {_money(total)} per {items:,} items ({plan.sla.name} tier)")
    lines.extend(f"    warning: {p}" for p in dict.fromkeys(problems))
    lines.append(
        f"    assumes: {items:,} items reach every satellite (no fan-out), {guess.workers} "
        f"steps at once, {guess.step_start_seconds:g} s to start a step, "
        f"{guess.seconds_per_item:g} s per item (LLM: {guess.llm_seconds_per_item:g} s per item "
        f"of a batch), {guess.prompt_tokens} prompt + {guess.completion_tokens} completion "
        "tokens per LLM item; set them under 'estimate:' in the prices file"
    )
    return lines

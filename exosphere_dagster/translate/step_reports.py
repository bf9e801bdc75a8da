"""What a satellite step tells about its chunk, besides its outputs: its cost, one error event
per failed item, the text of its failure (the item and its error first), and the metadata of its
``items`` and ``report`` outputs. The satellite op (ops.py) yields them; the standalone op shows
as many item ids as it does (``MAX_LISTED``)."""

from __future__ import annotations

from typing import Any

from dagster import MetadataValue

from exosphere_dagster.resolve.cost.prices import StepCost, step_cost
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import NodePlan
from exosphere_dagster.runtime.items import ChunkReport, FailedItem, Item, attempts_text
from exosphere_dagster.runtime.secrets import redact
from exosphere_dagster.runtime.step_runner import StepRunner
from exosphere_dagster.translate.ui import shown_usd
from yaml_loader.ir import SatelliteNode

MAX_LISTED = 50  # item ids / failures shown in a step's metadata and error events


def step_cost_of(
    context: Any,
    deployment: Deployment,
    report: ChunkReport,
    planned: NodePlan,
    seconds: float,
    configured: Any,
) -> StepCost | None:
    """The step's cost, added to its report; an unusable prices file is logged, not fatal."""
    model = planned.model_under(configured)
    table = deployment.prices
    if table is None:
        context.log.error(f"no cost for this step: {deployment.prices_problem or 'no prices'}")
        return None
    cost = step_cost(table, planned.resources, seconds, report.metrics, model)
    report.metrics.update(cost.metrics())
    report.cost_problems = list(cost.problems)
    for problem in cost.problems:
        context.log.warning(f"cost of this step is incomplete: {problem}")
    return cost


def log_failures(
    context: Any,
    runner: StepRunner,
    node: SatelliteNode,
    report: ChunkReport,
    handled: bool,
    tolerated: bool = False,
) -> None:
    """One error event per failed item (up to MAX_LISTED), naming it and its lineage."""
    verdict = (
        "routed to the failure branch"
        if handled
        else f"counted against min-success-ratio {node.min_success_ratio}"
        if tolerated
        else "with no failure branch to take it"
    )
    for failed in report.failed[:MAX_LISTED]:
        context.log.error(
            f"{node.id}: item {failed.item.id} failed {attempts_text(failed.attempts)}, "
            f"{verdict}: {failed.error}\n  lineage: {_lineage_text(failed, runner.redacted)}"
        )
    if len(report.failed) > MAX_LISTED:
        context.log.error(f"{node.id}: {len(report.failed) - MAX_LISTED} more failed item(s)")


def _lineage_text(failed: FailedItem, secrets: tuple[str, ...]) -> str:
    parts = []
    for satellite, value in failed.item.lineage.items():
        text = redact(repr(value), secrets)  # before the cut: a cut secret no longer matches
        parts.append(f"{satellite}={text[:80]}{'...' if len(text) > 80 else ''}")
    return " -> ".join(parts) or "(a run input)"


def failure_text(node: SatelliteNode, report: ChunkReport) -> str:
    """First the item and its error (what Dagster's UI shows first), then the chunk's numbers
    and the remedy."""
    first, *others = report.failed
    lines = [f"{first.item.id} at '{node.id}': {first.error}"]
    lines += [f"{f.item.id} at '{node.id}': {f.error}" for f in others[: MAX_LISTED - 1]]
    lines.append(
        f"{len(report.failed)} of {report.items_in} item(s) of chunk {report.chunk} failed with "
        f"no failure branch to take them ({report.succeeded} succeeded, are checkpointed and "
        "went on to the next satellites in this run)."
    )
    lines.append(
        "Fix the cause, then re-execute the run from failure (Dagster UI: Re-execute > From "
        "failure): only the failed items run again. Or add `failure: from:` to route them."
    )
    return "\n".join(lines)


def items_metadata(children: list[Item]) -> dict[str, Any]:
    listed = ", ".join(c.id for c in children[:MAX_LISTED])
    return {
        "items_out": len(children),
        "item_ids": MetadataValue.text(listed + (" ..." if len(children) > MAX_LISTED else "")),
    }


def report_metadata(report: ChunkReport, cost: StepCost | None = None) -> dict[str, Any]:
    failures = "\n".join(
        f"| {f.item.id} | {f.attempts} | {f.error[:200].replace('|', '/').replace(chr(10), ' ')} |"
        for f in report.failed[:MAX_LISTED]
    )
    return {
        "items_in": report.items_in,
        "succeeded": report.succeeded,
        "failed": len(report.failed),
        "resumed_from_checkpoint": report.resumed,
        "attempts": report.attempts,
        "item_events": MetadataValue.json(report.events_metadata()),
        **shown_usd(report.metrics),
        **_throughput(report.metrics),
        **({"compute/pool": cost.pool} if cost else {}),
        **(
            {"cost/problems": MetadataValue.text("; ".join(cost.problems))}
            if cost and cost.problems
            else {}
        ),
        "failures": MetadataValue.md("| item | attempts | error |\n|---|---|---|\n" + failures)
        if report.failed
        else MetadataValue.text("none"),
    }


def _throughput(metrics: dict[str, float]) -> dict[str, float]:
    """Completion tokens per second, when an LLM satellite reported its token counts."""
    tokens, seconds = metrics.get("llm/completion_tokens"), metrics.get("llm/seconds")
    return {"llm/tokens_per_second": round(tokens / seconds, 2)} if tokens and seconds else {}

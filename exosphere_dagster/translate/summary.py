"""The summary step: every item path ends once, as succeeded, routed or failed. It adds up the
satellites' chunk reports (running inline any chunk whose step never ran), stamps the counts and
the run's cost on the run and records them on the cluster's assets, whose history Dagster plots.
It runs in failed runs too: a red chunk step yields its report before it fails.

The run's cost (cost.py) is what this run's own steps spent, red ones included (each priced its
own), plus its light steps' (start, gathering, summary: their wall time from the event log x
their small requests). A re-execution counts only its own steps, not its parent's."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from dagster import Any as DagsterAny
from dagster import AssetMaterialization, In, MetadataValue, OpDefinition, Out, Output

from exosphere_dagster.resolve.cost.prices import COST_TAG, add_up, step_cost, token_cost
from exosphere_dagster.resolve.execution_plan import ResourceRequest
from exosphere_dagster.resolve.segments import Segment
from exosphere_dagster.runtime.items import ChunkReport
from exosphere_dagster.translate.deployment_resource import deployment_of
from exosphere_dagster.translate.ops import (
    STEP_RESOURCES,
    RunnerFactory,
    complete,
    definition_name,
)
from exosphere_dagster.translate.ui import ItemsFailed, shown_usd, usd_text
from yaml_loader.ir import ClusterPlan, SatelliteNode

SUMMARY_OP = "exosphere__summary"
COUNT_TAGS = {
    "items": "exosphere/items",
    "succeeded": "exosphere/succeeded",
    "routed_to_failure": "exosphere/routed",
    "failed_unhandled": "exosphere/failed",
}
COST_NOTE_TAG = "exosphere/cost_note"  # why the cost is missing or incomplete
Materialize = Callable[[ClusterPlan, dict[str, Any]], list[AssetMaterialization]]


def segment_ends(segment: Segment) -> list[SatelliteNode]:
    """The satellites of ``segment`` no other satellite of it follows: each chunk's reports
    travel along the segment (ops.reports_input), so the summary reads them from its ends."""
    parents = {p for n in segment.nodes for p in n.parents}
    return [n for n in segment.nodes if n.id not in parents]


def summary_inputs(plan: ClusterPlan, segments: list[Segment]) -> dict[str, str]:
    """Input name -> what it carries: each segment end's reports (its own and those before it
    in the chunk), each segment's manifest, and each gathering step's caught-up reports."""
    names = {f"report_{n.op_name}": "report" for s in segments for n in segment_ends(s)}
    names.update({f"manifest_{s.name}": "manifest" for s in segments})
    names.update({f"caught_{s.name}": "caught" for s in segments if s.sources})
    return names


def summary_op(
    plan: ClusterPlan,
    segments: list[Segment],
    make_runner: RunnerFactory,
    light: ResourceRequest,
    materialize: Materialize | None = None,
) -> OpDefinition:
    """Add up every satellite's reports; fail if an item failed with no handler (or, at a
    satellite with ``min-success-ratio``, if fewer than that share succeeded there)."""
    routed = plan.routed_nodes()
    input_names = summary_inputs(plan, segments)

    def compute(context, inputs: dict[str, Any]) -> Iterator[Any]:
        reports: dict[tuple[str, str], ChunkReport] = {}
        for name, kind in input_names.items():
            if kind == "caught":
                for report in inputs[name]:
                    reports.setdefault((report.satellite, report.chunk), report)
            elif kind == "report":
                for report in (r for chunk_reports in inputs[name] for r in chunk_reports):
                    reports[(report.satellite, report.chunk)] = report  # a step's own wins
        runner = make_runner(context)
        try:
            for segment in segments:
                caught = complete(
                    runner,
                    segment,
                    inputs[f"manifest_{segment.name}"],
                    set(reports),
                    segment.ids(),
                    keep_items=False,  # the summary adds up reports only
                )
                reports.update({key: report for key, (_, report) in caught.items()})
            models = {
                n.id: runner.execution.node(n.id).model_under(runner.node_config(n))
                for s in segments
                for n in s.nodes
            }
        finally:
            runner.close()
        by_node: dict[str, list[ChunkReport]] = {}
        for (node_id, _), report in sorted(reports.items()):
            by_node.setdefault(node_id, []).append(report)
        totals = summarise(plan, by_node)
        light_steps = {s.name for s in segments} | {SUMMARY_OP}
        own = [r for r in reports.values() if r.run_id in (context.run_id, "")]
        cost, per_cost, source, problems = run_cost(context, own, models, light_steps, light)
        tags = {tag: str(totals[key]) for key, tag in COUNT_TAGS.items()}
        if "cost_usd" in cost:
            tags[COST_TAG] = usd_text(cost["cost_usd"])
        if problems:
            tags[COST_NOTE_TAG] = cost_note(problems, "cost_usd" in cost)
        context.instance.add_run_tags(context.run_id, tags)
        found = materialize(plan, totals) if materialize else []
        yield from with_costs(plan, found, per_cost)
        metadata: dict[str, Any] = {k: v for k, v in totals.items() if k != "per_satellite"}
        metadata["per_satellite"] = MetadataValue.md(
            _table(totals["per_satellite"], routed, per_cost)
        )
        metadata.update(shown_usd(cost))
        if source:
            metadata["cost/prices"] = MetadataValue.text(source)
        if problems:
            metadata["cost/problems"] = MetadataValue.text("\n".join(problems))
        verdicts = failing(plan, totals["per_satellite"])
        if verdicts:
            raise ItemsFailed(
                description="\n".join(verdicts), metadata=metadata, allow_retries=False
            )
        yield Output(None, "result", metadata=metadata)

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, SUMMARY_OP),
        ins={name: In(DagsterAny) for name in input_names},
        outs={"result": Out(DagsterAny)},
        description="Counts items in, succeeded, routed and failed, and the run's cost, in failed "
        "runs too; fails the run on failed items with no failure branch (or below a satellite's "
        "min-success-ratio).",
        tags={"exosphere/role": "summary"},
        required_resource_keys=STEP_RESOURCES,
    )


def summarise(plan: ClusterPlan, reports: dict[str, list[ChunkReport]]) -> dict[str, Any]:
    """Run totals: each item path ends once, as succeeded, routed or failed-unhandled."""
    routed_nodes = plan.routed_nodes()
    per: dict[str, dict[str, int]] = {}
    succeeded = routed = unhandled = branch_failed = 0
    leaves = {n.id for n in plan.nodes if not plan.children(n.id)}
    for node_id, chunk_reports in reports.items():
        node = plan.node(node_id)
        row = {"in": 0, "succeeded": 0, "failed": 0, "resumed": 0}
        for r in chunk_reports:
            row["in"] += r.items_in
            row["succeeded"] += r.succeeded
            row["failed"] += len(r.failed)
            row["resumed"] += r.resumed
            if node.branch == "main":
                succeeded += r.succeeded if node_id in leaves else r.ended
                if node_id in routed_nodes:
                    routed += len(r.failed)
                else:
                    unhandled += len(r.failed)
            elif node.branch == "failure":
                branch_failed += len(r.failed)
        per[node_id] = row
    lost_in_branch = min(branch_failed, routed)  # routed, then failed there too: failed, once
    return {
        "items": succeeded + routed + unhandled,
        "succeeded": succeeded,
        "routed_to_failure": routed - lost_in_branch,
        "failed_unhandled": unhandled + lost_in_branch,
        "per_satellite": per,
    }


def failing(plan: ClusterPlan, per: dict[str, dict[str, int]]) -> list[str]:
    """Why the run fails, one line per satellite: items failed with no handler there, or fewer
    than its ``min-success-ratio`` succeeded. Empty: the run succeeds."""
    routed, lines = plan.routed_nodes(), []
    for node_id, row in per.items():
        if not row["failed"] or node_id in routed:
            continue
        ratio = plan.node(node_id).min_success_ratio
        if ratio is None:
            lines.append(
                f"{node_id}: {row['failed']} item(s) failed with no failure branch to take them "
                "(see its steps' 'failures' metadata); re-execute from failure to retry them"
            )
        elif row["succeeded"] < ratio * row["in"]:
            lines.append(
                f"{node_id}: {row['succeeded']} of {row['in']} item(s) succeeded, below its "
                f"min-success-ratio {ratio}; re-execute the run to retry the "
                f"{row['failed']} failed item(s) (the others come from checkpoints)"
            )
    return lines


def cost_note(problems: list[str], priced: bool) -> str:
    """The ``exosphere/cost_note`` tag: the cost is missing, or incomplete, and why."""
    text = ("incomplete: " if priced else "no cost: ") + problems[0]
    more = (
        f" (+{len(problems) - 1} more in the summary's cost/problems)" if len(problems) > 1 else ""
    )
    return text[: 240 - len(more)] + more


def run_cost(
    context: Any,
    reports: list[ChunkReport],
    models: dict[str, tuple[str, str] | None],
    light_steps: set[str],
    where: ResourceRequest,
) -> tuple[dict[str, float], dict[str, float], str, list[str]]:
    """(the run's summed costs and usage, cost per satellite, the prices' source, what could not
    be priced). A report without a cost ran inline in a light step: its compute is that
    step's, its tokens are priced here. Light steps: event-log wall time x the summary's own
    (light) requests."""
    deployment = deployment_of(context)
    table, problem = deployment.prices, deployment.prices_problem or "no prices"
    if table is None:
        context.log.error(f"no cost for this run: {problem}")
        return {}, {}, "", [problem]
    numbers: list[dict[str, float]] = []
    per: dict[str, float] = {}
    problems: list[str] = []
    for report in reports:
        metrics = dict(report.metrics)
        problems.extend(p for p in report.cost_problems if p not in problems)
        if "cost_usd" not in metrics:
            usd, note = token_cost(table, models.get(report.satellite), metrics)
            metrics.update({"cost/tokens_usd": usd, "cost_usd": usd})
            if note and note not in problems:
                problems.append(note)
        per[report.satellite] = per.get(report.satellite, 0.0) + metrics["cost_usd"]
        numbers.append(metrics)
    now = time.time()
    for stat in context.instance.get_run_step_stats(context.run_id, step_keys=list(light_steps)):
        if stat.start_time:
            seconds = max(0.0, (stat.end_time or now) - stat.start_time)
            light = step_cost(table, where, seconds, {})
            numbers.append(light.metrics())
            problems.extend(p for p in light.problems if p not in problems)
    return add_up(numbers), per, table.source, problems


def with_costs(
    plan: ClusterPlan, found: list[AssetMaterialization], per_cost: dict[str, float]
) -> Iterator[AssetMaterialization]:
    """The satellites' materializations, each with its satellite's ``cost_usd`` (plain decimals,
    ui.usd_text) and ``cost_micro_usd`` (millionths of a dollar: a number Dagster plots that
    reads without an exponent)."""
    from exosphere_dagster.translate.lineage import satellite_key

    nodes = {satellite_key(plan, n): n.id for n in (*plan.nodes, *plan.failure_nodes)}
    for event in found:
        node_id = nodes.get(event.asset_key)
        if node_id is None or node_id not in per_cost:
            yield event
            continue
        yield AssetMaterialization(
            asset_key=event.asset_key,
            description=event.description,
            metadata={
                **event.metadata,
                "cost_usd": MetadataValue.text(usd_text(per_cost[node_id])),
                "cost_micro_usd": MetadataValue.float(round(per_cost[node_id] * 1e6, 4)),
            },
            partition=event.partition,
            tags=event.tags,
        )


def _table(per: dict[str, dict[str, int]], routed: frozenset[str], costs: dict[str, float]) -> str:
    rows = [
        "| satellite | in | succeeded | failed | resumed | cost (USD) |",
        "|---|---|---|---|---|---|",
    ]
    for node_id, r in per.items():
        mark = " (routed)" if node_id in routed and r["failed"] else ""
        usd = usd_text(costs[node_id]) if node_id in costs else "-"
        rows.append(
            f"| {node_id} | {r['in']} | {r['succeeded']} | {r['failed']}{mark} | "
            f"{r['resumed']} | {usd} |"
        )
    return "\n".join(rows)

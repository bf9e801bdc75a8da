"""The summary step: every item path ends once, as succeeded, routed or failed. It adds up the
satellites' chunk reports (running inline any chunk whose step never ran), stamps the counts and
the run's cost on the run and records them on the cluster's assets, whose history Dagster plots."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from dagster import Any as DagsterAny
from dagster import AssetMaterialization, Failure, In, MetadataValue, OpDefinition, Out, Output

from exosphere_dagster.ops import RunnerFactory, complete, definition_name, light_step_cost
from exosphere_dagster.runtime.items import ChunkReport
from exosphere_dagster.segments import Segment
from yaml_loader.ir import ClusterPlan

SUMMARY_OP = "exosphere__summary"
COUNT_TAGS = {
    "items": "exosphere/items",
    "succeeded": "exosphere/succeeded",
    "routed_to_failure": "exosphere/routed",
    "failed_unhandled": "exosphere/failed",
}
COST_TAG = "exosphere/cost_usd"
COST_PER_1000_TAG = "exosphere/cost_usd_per_1000"
# Numbers the satellite steps report (ops.py, cost.py) that add up over a run.
SUMMED = (
    "cost_usd",
    "cost/compute_usd",
    "cost/tokens_usd",
    "cost/unpriced_steps",
    "compute_seconds",
    "cpu_seconds",
    "gpu_seconds",
    "llm/prompt_tokens",
    "llm/completion_tokens",
    "llm/batch_prompt_tokens",
    "llm/batch_completion_tokens",
)
Materialize = Callable[[ClusterPlan, dict[str, Any]], list[AssetMaterialization]]


def summary_inputs(plan: ClusterPlan, segments: list[Segment]) -> dict[str, str]:
    """Input name -> what it carries: each satellite's reports, each segment's manifest, and
    each gathering step's caught-up reports."""
    names = {f"report_{n.op_name}": "report" for s in segments for n in s.nodes}
    names.update({f"manifest_{s.name}": "manifest" for s in segments})
    names.update({f"caught_{s.name}": "caught" for s in segments if s.sources})
    return names


def summary_op(
    plan: ClusterPlan,
    segments: list[Segment],
    make_runner: RunnerFactory,
    materialize: Materialize | None = None,
) -> OpDefinition:
    """Add up every satellite's reports; fail only if an item failed with no handler."""
    routed = plan.routed_nodes()
    input_names = summary_inputs(plan, segments)

    def compute(context, inputs: dict[str, Any]) -> Iterator[Any]:
        started = time.perf_counter()
        reports: dict[tuple[str, str], ChunkReport] = {}
        for name, kind in input_names.items():
            if kind == "caught":
                for report in inputs[name]:
                    reports.setdefault((report.satellite, report.chunk), report)
            elif kind == "report":
                for report in inputs[name]:
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
                )
                reports.update({key: report for key, (_, report) in caught.items()})
        finally:
            runner.close()
        by_node: dict[str, list[ChunkReport]] = {}
        for (node_id, _), report in sorted(reports.items()):
            by_node.setdefault(node_id, []).append(report)
        totals = summarise(plan, by_node)
        inputs_count = sum(len(items) for items in inputs[f"manifest_{segments[0].name}"].values())
        cost = run_cost(by_node, inputs_count)
        tags = {tag: str(totals[key]) for key, tag in COUNT_TAGS.items()}
        context.instance.add_run_tags(context.run_id, {**tags, **cost_tags(cost)})
        if materialize:
            yield from with_cost(plan, materialize(plan, totals), totals["per_satellite"])
        metadata = {k: v for k, v in totals.items() if k != "per_satellite"}
        metadata.update(cost)
        metadata["per_satellite"] = MetadataValue.md(_table(totals["per_satellite"], routed))
        metadata["summary_step"] = MetadataValue.json(
            {k: getattr(v, "value", v) for k, v in light_step_cost(context, started).items()}
        )
        if totals["failed_unhandled"]:
            raise Failure(
                description=f"{totals['failed_unhandled']} item(s) failed with no failure "
                "branch to take them (see the failed satellites' 'failures' metadata)",
                metadata=metadata,
                allow_retries=False,
            )
        yield Output(None, "result", metadata=metadata)

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, SUMMARY_OP),
        ins={name: In(DagsterAny) for name in input_names},
        outs={"result": Out(DagsterAny)},
        description="Counts items in, succeeded and routed to failure; fails on unhandled failures.",
        tags={"exosphere/role": "summary"},
    )


def summarise(plan: ClusterPlan, reports: dict[str, list[ChunkReport]]) -> dict[str, Any]:
    """Run totals: each item path ends once, as succeeded, routed or failed-unhandled."""
    routed_nodes = plan.routed_nodes()
    per: dict[str, dict[str, Any]] = {}
    succeeded = routed = unhandled = branch_failed = 0
    leaves = {n.id for n in plan.nodes if not plan.children(n.id)}
    for node_id, chunk_reports in reports.items():
        node = plan.node(node_id)
        row: dict[str, Any] = {"in": 0, "succeeded": 0, "failed": 0, "resumed": 0}
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
        for key in ("cost_usd", "compute_seconds"):
            if any(key in r.metrics for r in chunk_reports):
                row[key] = round(sum(r.metrics.get(key, 0.0) for r in chunk_reports), 10)
        per[node_id] = row
    return {
        "items": succeeded + routed + unhandled,
        "succeeded": succeeded,
        "routed_to_failure": routed,
        "failed_unhandled": unhandled + branch_failed,
        "per_satellite": per,
    }


def run_cost(reports: dict[str, list[ChunkReport]], inputs: int) -> dict[str, Any]:
    """The run's compute, tokens and cost: its satellite steps' numbers added up, and the cost
    per 1,000 run inputs (``cost_usd`` only when some step was priced)."""
    totals: dict[str, float] = {}
    for chunk_reports in reports.values():
        for report in chunk_reports:
            for key in SUMMED:
                if key in report.metrics:
                    totals[key] = totals.get(key, 0.0) + report.metrics[key]
    out: dict[str, Any] = {k: round(v, 10) for k, v in totals.items()}
    if "cost_usd" in totals and inputs:
        out["cost_usd_per_1000_items"] = round(totals["cost_usd"] / inputs * 1000, 10)
    return out


def cost_tags(cost: dict[str, Any]) -> dict[str, str]:
    """Run tags beside the count tags, so runs can be compared by cost in the runs list."""
    tags = {}
    if "cost_usd" in cost:
        tags[COST_TAG] = f"{cost['cost_usd']:.6f}"
    if "cost_usd_per_1000_items" in cost:
        tags[COST_PER_1000_TAG] = f"{cost['cost_usd_per_1000_items']:.6f}"
    return tags


def with_cost(
    plan: ClusterPlan, materializations: list[AssetMaterialization], per: dict[str, dict]
) -> Iterator[AssetMaterialization]:
    """The satellites' materializations with their cost and compute seconds added, so that
    Dagster plots each satellite's cost per run beside its counts."""
    from exosphere_dagster.lineage import satellite_key

    by_key = {satellite_key(plan, plan.node(n)): row for n, row in per.items()}
    for m in materializations:
        row = by_key.get(m.asset_key, {})
        extra = {
            k: MetadataValue.float(float(row[k]))
            for k in ("cost_usd", "compute_seconds")
            if k in row
        }
        if not extra:
            yield m
            continue
        yield AssetMaterialization(
            asset_key=m.asset_key,
            description=m.description,
            metadata={**m.metadata, **extra},
            partition=m.partition,
            tags=m.tags,
        )


def _table(per: dict[str, dict[str, Any]], routed: frozenset[str]) -> str:
    priced = any("cost_usd" in r for r in per.values())
    head = "| satellite | in | succeeded | failed | resumed |"
    rows = [head + (" compute s | cost USD |" if priced else ""), "|---|---|---|---|---|"]
    rows[1] += "---|---|" if priced else ""
    for node_id, r in per.items():
        mark = " (routed)" if node_id in routed and r["failed"] else ""
        row = f"| {node_id} | {r['in']} | {r['succeeded']} | {r['failed']}{mark} | {r['resumed']} |"
        if priced:
            row += f" {r.get('compute_seconds', 0):.2f} | {r.get('cost_usd', 0):.6f} |"
        rows.append(row)
    return "\n".join(rows)

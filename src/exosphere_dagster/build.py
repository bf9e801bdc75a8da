"""ClusterPlan -> Dagster JobDefinition: the only place that wires ops into a graph."""

from __future__ import annotations

from typing import Any

from dagster import GraphDefinition, JobDefinition, graph

from exosphere_dagster.ops import START_OP, SUMMARY_OP, satellite_op, split_op, start_op, summary_op
from exosphere_dagster.resources import io_resources
from exosphere_dagster.tags import SATELLITE_TAG, sla_run_tags
from satellite_ops.registry import SatelliteRegistry
from yaml_loader.ir import ClusterPlan, SatelliteNode


def build_job(plan: ClusterPlan, registry: SatelliteRegistry, **job_kwargs: Any) -> JobDefinition:
    """One job per cluster: start -> (split -> mapped satellite -> collect)* -> summary."""
    return build_graph(plan, registry).to_job(
        name=plan.job_name,
        resource_defs=io_resources(),
        description=_description(plan),
        tags=sla_run_tags(plan),
        metadata={"cluster file": plan.file, "trigger": plan.trigger_text, "sla": plan.sla.name},
        **job_kwargs,
    )


def build_graph(plan: ClusterPlan, registry: SatelliteRegistry) -> GraphDefinition:
    start = start_op(plan).alias(START_OP)
    routed = sorted(plan.routed_nodes(), key=lambda i: [n.id for n in plan.nodes].index(i))
    report_inputs: dict[str, str] = {}

    manifests: dict[str, Any] = {}
    log_sinks = [(n, registry.get(n.uses)) for n in plan.log_nodes]

    def wire(
        nodes: tuple[SatelliteNode, ...],
        root_sources: dict[str, Any],
        from_failures: bool,
        reports: dict[str, Any],
    ) -> None:
        items: dict[str, Any] = {}
        for node in nodes:
            definition = registry.get(node.uses)
            if node.parents:
                sources = {f"from_{plan.node(p).op_name}": items[p] for p in node.parents}
                failures = False
            else:
                sources, failures = root_sources, from_failures
            splitter = split_op(node, plan, definition, sorted(sources), failures)
            chunks, manifests[node.id] = splitter.alias(f"{node.op_name}__chunks")(**sources)
            op_def = satellite_op(node, plan, definition, {SATELLITE_TAG: node.uses}, log_sinks)
            step = op_def.alias(node.op_name)
            out_items, out_report = chunks.map(lambda chunk, step=step: step(chunk=chunk))
            if plan.children(node.id):
                items[node.id] = out_items.collect()
            reports[node.id] = out_report.collect()

    @graph(name=plan.job_name)
    def cluster_graph() -> None:
        reports: dict[str, Any] = {}
        wire(plan.nodes, {"from_start": start()}, False, reports)
        if plan.failure_nodes and routed:
            failed = {f"failed_{plan.node(r).op_name}": reports[r] for r in routed}
            wire(plan.failure_nodes, failed, True, reports)
        inputs = {}
        for node_id, handle in reports.items():
            name = f"report_{plan.node(node_id).op_name}"
            inputs[name] = handle
            report_inputs[name] = node_id
        manifest_inputs = {f"manifest_{plan.node(n).op_name}": h for n, h in manifests.items()}
        summary = summary_op(plan, dict(report_inputs), sorted(manifest_inputs)).alias(SUMMARY_OP)
        summary(**inputs, **manifest_inputs)

    return cluster_graph


def _description(plan: ClusterPlan) -> str:
    lines = [plan.title or plan.identifier]
    if plan.description:
        lines.append(plan.description)
    lines.append(f"SLA {plan.sla.name}; trigger: {plan.trigger_text}; defined in {plan.file}")
    return "\n\n".join(lines)


__all__ = ["build_job", "build_graph", "SUMMARY_OP"]

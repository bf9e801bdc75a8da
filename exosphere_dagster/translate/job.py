"""ClusterPlan -> Dagster JobDefinition: the only place that wires ops into a graph.

The graph has one node per satellite, plus the start op, one gathering op per re-chunk point
(segments.py) and the summary. Inside a segment the satellites are chained over the same
mapping key, so a chunk flows to the segment's last satellite without waiting for the others.
"""

from __future__ import annotations

from typing import Any

from dagster import GraphDefinition, JobDefinition, graph

from exosphere_dagster.resolve.content import CONTENT_HASH_KEY, file_hash
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan, NodePlan
from exosphere_dagster.resolve.placement import Pods, k8s_tag
from exosphere_dagster.resolve.segments import START, Segment
from exosphere_dagster.resolve.tags import PRIORITY_TAG, SATELLITE_TAG
from exosphere_dagster.runtime.step_runner import StepRunner
from exosphere_dagster.translate.deployment_resource import (
    RESOURCE_KEY,
    ExosphereDeployment,
    deployment_of,
)
from exosphere_dagster.translate.executor import executor_for
from exosphere_dagster.translate.io_manager import io_resources
from exosphere_dagster.translate.launchpad.edits import (
    check_run_config,
    config_schema,
    configured_node,
    defaults,
)
from exosphere_dagster.translate.ops import gather_op, reports_input, satellite_op, start_op
from exosphere_dagster.translate.summary import SUMMARY_OP, segment_ends, summary_op
from satellite_ops.registry import SatelliteRegistry
from yaml_loader.ir import ClusterPlan, SatelliteNode


def build_job(
    plan: ClusterPlan,
    registry: SatelliteRegistry,
    deployment: Deployment | None = None,
    **job_kwargs: Any,
) -> JobDefinition:
    """One job per cluster: ``plan`` resolved under ``deployment`` (the environment's by
    default, cached per process), then translated (:func:`job_for`)."""
    from exosphere_dagster.resolve.resolve import resolve

    deployment = deployment or Deployment.load()
    return job_for(resolve(plan, deployment, registry), registry, deployment, **job_kwargs)


def job_for(
    execution: ExecutionPlan,
    registry: SatelliteRegistry,
    deployment: Deployment,
    **job_kwargs: Any,
) -> JobDefinition:
    """The job of a resolved cluster: start -> chained satellites per segment -> summary. Every
    number (tags, chunk bounds, retries, requests, pools) is read from ``execution``."""
    if "executor_def" not in job_kwargs:
        job_kwargs["executor_def"] = executor_for(deployment)
    pods = deployment.placement.for_executor(job_kwargs["executor_def"]).pods
    plan = execution.plan
    return build_graph(execution, registry, pods).to_job(
        name=plan.job_name,
        resource_defs=job_resources(deployment),
        description=_description(plan),
        tags=run_tags(execution, pods),
        metadata={
            "cluster file": plan.file,
            "trigger": plan.trigger_text,
            "sla": execution.run.tier,
            **({CONTENT_HASH_KEY: digest} if (digest := file_hash(plan.file)) else {}),
        },
        **job_kwargs,
    )


_shared_resources: list[tuple[Deployment, Deployment, dict[str, Any]]] = []  # the last made


def job_resources(deployment: Deployment) -> dict[str, Any]:
    """The IO manager and the ``exosphere`` resource steps read the deployment from; made once
    per deployment (and environment: the resource holds what differs from it) and shared by
    every job built for it: two jobs a cluster, and each resource costs a few ms of pydantic and
    config-schema work, a fifth of a folder's build."""
    environment = Deployment.load()
    if not _shared_resources or _shared_resources[0][:2] != (deployment, environment):
        made = {**io_resources(deployment), RESOURCE_KEY: ExosphereDeployment.matching(deployment)}
        _shared_resources[:] = [(deployment, environment, made)]
    return dict(_shared_resources[0][2])


def run_tags(execution: ExecutionPlan, pods: Pods) -> dict[str, str]:
    """Every run's tags (resolved), plus the run pod's ``dagster-k8s/config`` where runs are
    pods."""
    placement = execution.run.light.placement
    return {**execution.run.tags, **(k8s_tag(placement.k8s_config()) if pods.run else {})}


class Wiring:
    """Adds segments of satellites to the graph being composed, with their placement tags.
    Shared by the cluster job and its SLA-breach alert job. Reads the resolved plan only."""

    def __init__(self, execution: ExecutionPlan, registry: SatelliteRegistry, pods: Pods) -> None:
        self.execution = execution
        self.plan = execution.plan
        self.registry = registry
        self.pods = pods
        self.light_tags = self.step_tags(execution.run.light.placement)  # start/gather/summary
        self.definitions = {n: p.definition for n, p in execution.nodes.items()}
        self.items: dict[str, Any] = {}  # node id -> its collected items
        self.reports: dict[str, Any] = {}  # node id -> its collected reports
        self.manifests: dict[str, Any] = {}  # segment name -> its manifest
        self.caught: dict[str, Any] = {}  # gathering op -> its caught-up reports

    def step_tags(self, placement: Any) -> dict[str, str]:
        """An op's ``dagster-k8s/config`` tag, when its steps run in pods; else none."""
        return k8s_tag(placement.k8s_config()) if self.pods.steps else {}

    def make_runner(self, context: Any) -> StepRunner:
        return StepRunner(
            context, self.execution, deployment_of(context), self.node_config(context)
        )

    def node_config(self, context: Any) -> Any:
        """node -> the node with this run's op config (its own step's, or the run config's for
        the nodes a gathering step runs inline)."""
        given = context.run_config.get("ops") or {}
        own = context.op_handle.name  # a satellite step: its own op config has the defaults

        def configured(node: SatelliteNode) -> SatelliteNode:
            definition = self.definitions[node.id]
            if node.op_name == own:
                return configured_node(node, definition, context.op_config)
            edited = (given.get(node.op_name) or {}).get("config")
            if not edited:
                return node
            schema = config_schema(node, definition)
            return configured_node(node, definition, {**defaults(schema), **edited})

        return configured

    def materializations(self, plan: ClusterPlan, totals: dict[str, Any]) -> list[Any]:
        """The run's counts on the cluster's assets (lineage.py), plotted by Dagster."""
        from exosphere_dagster.translate.lineage import run_materializations

        return run_materializations(plan, totals, self.registry)

    def start(self, segment: Segment) -> Any:
        registry = self.registry
        op = start_op(
            self.plan,
            segment,
            self.execution.chunks[segment.name],
            lambda run_config: check_run_config(self.plan, registry, run_config),
        )
        chunks, self.manifests[segment.name] = op.alias(START).tag(self.light_tags)()
        return chunks

    def gather(self, segment: Segment, upstream: dict[str, Segment]) -> Any:
        """The collect + split node in front of ``segment``."""
        own = {s.name: s for s in upstream.values()}
        chunk = self.execution.chunks[segment.name]
        op = gather_op(self.plan, segment, upstream, chunk, self.make_runner)
        sources = {
            f"from_{self.plan.node(s).op_name}": (
                self.reports[s] if segment.from_failures else self.items[s]
            )
            for s in segment.sources
        }
        manifests = {f"manifest_{name}": self.manifests[name] for name in own}
        chunks, self.manifests[segment.name], self.caught[segment.name] = op.alias(
            segment.name
        ).tag(self.light_tags)(**sources, **manifests)
        return chunks

    def chain(self, segment: Segment, chunks: Any) -> None:
        """Map the segment's satellites over its chunks, each chunk straight through."""
        plan, members = self.plan, segment.ids()
        ops = {n.id: self._satellite(n, members) for n in segment.nodes}

        def one_chunk(chunk: Any) -> tuple[Any, ...]:
            outputs: dict[str, Any] = {}
            for node in segment.nodes:
                inside = [p for p in node.parents if p in members]
                ins = {}
                for p in inside:  # a parent's items, and the chunk's reports so far
                    name = f"from_{plan.node(p).op_name}"
                    ins.update({name: outputs[p][0], reports_input(name): outputs[p][1]})
                ins = ins or {"chunk": chunk}
                outputs[node.id] = ops[node.id](**ins)
            return tuple(handle for node in segment.nodes for handle in outputs[node.id])

        handles = chunks.map(one_chunk)
        for i, node in enumerate(segment.nodes):
            self.items[node.id] = handles[2 * i].collect()
            self.reports[node.id] = handles[2 * i + 1].collect()

    def _satellite(self, node: SatelliteNode, members: set[str]) -> Any:
        planned: NodePlan = self.execution.node(node.id)
        tags = {
            SATELLITE_TAG: node.uses,
            PRIORITY_TAG: str(planned.op_priority),  # deeper first: chunks flow through
            **self.step_tags(planned.resources.placement),
        }
        inside = [p for p in node.parents if p in members]
        inputs = [f"from_{self.plan.node(p).op_name}" for p in inside] if inside else ["chunk"]
        schema = config_schema(node, planned.definition)
        op = satellite_op(self.plan, planned, inputs, tags, schema, self.make_runner)
        return op.alias(node.op_name)

    def summary(self, segments: list[Segment]) -> None:
        inputs = {  # one edge per segment end: its reports hold those of the chunk before it
            f"report_{n.op_name}": self.reports[n.id] for s in segments for n in segment_ends(s)
        }
        inputs.update({f"manifest_{s.name}": self.manifests[s.name] for s in segments})
        inputs.update({f"caught_{s.name}": self.caught[s.name] for s in segments if s.sources})
        op = summary_op(
            self.plan, segments, self.make_runner, self.execution.run.light, self.materializations
        )
        op.alias(SUMMARY_OP).tag(self.light_tags)(**inputs)


def wire_segments(wiring: Wiring, segments: list[Segment], first_chunks: Any = None) -> None:
    """Start (or gather) each segment, chain its satellites, then sum up. ``first_chunks``
    feeds the first segment from an op of the caller's (the SLA-breach job's)."""
    home: dict[str, Segment] = {}
    for segment in segments:
        if segment is segments[0] and first_chunks is not None:
            chunks = first_chunks
        elif segment.name == START:
            chunks = wiring.start(segment)
        else:
            chunks = wiring.gather(segment, {s: home[s] for s in segment.sources})
        wiring.chain(segment, chunks)
        home.update((n.id, segment) for n in segment.nodes)
    wiring.summary(segments)


def build_graph(
    execution: ExecutionPlan, registry: SatelliteRegistry, pods: Pods
) -> GraphDefinition:
    @graph(name=execution.plan.job_name)
    def cluster_graph() -> None:
        wire_segments(Wiring(execution, registry, pods), list(execution.segments))

    return cluster_graph


def _description(plan: ClusterPlan) -> str:
    lines = [plan.title or plan.identifier]
    if plan.description:
        lines.append(plan.description)
    lines.append(f"SLA {plan.sla.name}; trigger: {plan.trigger_text}; defined in {plan.file}")
    return "\n\n".join(lines)


__all__ = ["build_job", "job_for", "build_graph", "Wiring", "SUMMARY_OP"]

"""Everything a Dagster step needs to run satellites over chunks: the run's template scope,
secrets, checkpoints and log forwarding, set up once per step.

The satellite ops use it for their own chunk; the gathering and summary steps use it to run a
segment's satellites inline for chunks whose steps never ran (a killed run re-executed "from
failure": Dagster does not re-create mapped steps that never started).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan, RunPolicy
from exosphere_dagster.resolve.segments import Segment
from exosphere_dagster.resolve.tags import TRIGGER_TIME_TAG, parse_time
from exosphere_dagster.runtime.checkpoint import checkpoint_store_for
from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
from exosphere_dagster.runtime.items import ChunkReport, FailedItem, Item
from exosphere_dagster.runtime.logs import LogForwarder, StepLog
from exosphere_dagster.runtime.secrets import (
    SecretResolutionError,
    redaction_values,
    resolve_secrets,
)
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.templates.scope import run_scope

NodeConfig = Callable[[SatelliteNode], SatelliteNode]  # the node with this run's edited config


class StepRunner:
    """One step's satellites, as ``execution`` resolved them under ``deployment``: retries,
    timeouts and concurrency per node, the run's deadline and tier, the Batch API policy and
    the log sinks' queue and drain time are read from there, never recomputed."""

    def __init__(
        self,
        context: Any,
        execution: ExecutionPlan,
        deployment: Deployment,
        node_config: NodeConfig = lambda node: node,
    ) -> None:
        self.context = context
        self.execution = execution
        self.plan = plan = execution.plan
        self.node_config = node_config
        run = context.run
        self.run_id = run.run_id
        self.root_run_id = run.root_run_id or run.run_id
        self.store = checkpoint_store_for(context.instance, deployment)
        self.deadline, self.shared = run_window(plan, execution.run, run)
        self.batch = execution.batch_api  # satellites' BatchPolicy, resolved
        sinks = [(sink.node, sink.definition) for sink in execution.log_sinks]
        self.forwarder = LogForwarder.for_step(
            plan, sinks, run.run_id, deployment, base_scope=self.shared
        )
        self.redacted = redaction_values(plan.secrets)  # also the ids' secrets (child_id)
        self.routed = plan.routed_nodes()  # their failed items go to the failure branch

    def run(
        self, node: SatelliteNode, chunk_key: str, items: list[Item]
    ) -> tuple[list, ChunkReport]:
        """One satellite over one chunk: (the items it produced, its report)."""
        node = self.node_config(node)
        log = StepLog(self.context.log, self.forwarder, node.id)
        try:
            secrets = resolve_secrets(self.plan.secrets, node.secrets)
        except SecretResolutionError as exc:
            log.error(f"{node.id}: {exc}")
            failed = [FailedItem(i, node.id, str(exc), type(exc).__name__, 0) for i in items]
            return [], ChunkReport(
                node.id, chunk=chunk_key, items_in=len(items), failed=failed, run_id=self.run_id
            )
        planned = self.execution.node(node.id)
        job = ChunkJob(
            node=node,
            definition=planned.definition,
            plan=planned,
            base_scope={**self.shared, "secrets": secrets},
            log=log,
            run_id=self.run_id,
            cluster=self.plan.identifier,
            checkpoint=self.store.log_for(self.root_run_id, node.op_name, chunk_key),
            secret_values=(*secrets.values(), *self.redacted),
            deadline=self.deadline,
            sla=self.execution.run.tier,
            batch=self.batch,
        )
        children, report = run_chunk(job, items)
        report.chunk, report.run_id = chunk_key, self.run_id
        report.add_verdicts(routed=node.id in self.routed)
        log.info(
            f"{node.id}: {report.items_in} in, {report.succeeded} succeeded, "
            f"{len(report.failed)} failed, {report.outputs} out"
            + (f", {report.resumed} from checkpoint" if report.resumed else "")
        )
        return children, report

    def run_inline(
        self, segment: Segment, chunk_key: str, items: list[Item], targets: set[str]
    ) -> dict[str, tuple[list[Item], ChunkReport]]:
        """Run ``targets`` (and their ancestors in ``segment``) over one chunk in this process.
        Checkpoints make the items that already succeeded free."""
        wanted: dict[str, SatelliteNode] = {}
        for target in targets:
            wanted.update((n.id, n) for n in segment.upstream(target))
        done: dict[str, tuple[list[Item], ChunkReport]] = {}
        for node in segment.nodes:
            if node.id not in wanted:
                continue
            inside = [p for p in node.parents if p in segment.ids()]
            chunk = [i for p in inside for i in done[p][0]] if inside else items
            done[node.id] = self.run(node, chunk_key, chunk)
        return done

    def close(self) -> None:
        self.forwarder.flush()


def run_window(plan: ClusterPlan, policy: RunPolicy, run: Any) -> tuple[datetime, dict[str, Any]]:
    """The run's deadline (``policy``'s rule from the trigger time tag, kept by
    re-executions, else now) and the template values every item shares (``cluster.*``,
    ``run.*``); secrets are added per satellite."""
    started = datetime.now(UTC)
    start = parse_time(run.tags.get(TRIGGER_TIME_TAG)) or started
    deadline = policy.deadline(start)
    return deadline, run_scope(plan, run.run_id, started, start, deadline, {})

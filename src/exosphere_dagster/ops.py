"""The generic Dagster ops every cluster is built from: start, split into chunks, run a
satellite over a chunk, and sum up. Satellites know nothing of Dagster; this is the wrapper."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import Any as DagsterAny
from dagster import (
    Array,
    DynamicOut,
    DynamicOutput,
    Failure,
    Field,
    In,
    MetadataValue,
    OpDefinition,
    Out,
    Output,
    Permissive,
    RetryPolicy,
)

from exosphere_dagster.runtime.checkpoint import checkpoint_store_for
from exosphere_dagster.runtime.chunking import chunk_size, split
from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
from exosphere_dagster.runtime.items import ChunkReport, FailedItem, Item, seed_items
from exosphere_dagster.runtime.logs import LogForwarder, StepLog
from exosphere_dagster.runtime.secrets import (
    SecretResolutionError,
    redaction_values,
    resolve_secrets,
)
from exosphere_dagster.tags import TRIGGER_TIME_TAG
from satellite_ops.registry import SatelliteDefinition
from yaml_loader.ir import ClusterPlan, SatelliteNode

START_OP = "exosphere__start"
SUMMARY_OP = "exosphere__summary"
STEP_RETRY = RetryPolicy(max_retries=2, delay=5)  # step/process loss; items retry inside a step
MAX_LISTED = 50  # item ids / failures shown in a step's metadata


def definition_name(plan: ClusterPlan, node_name: str) -> str:
    """Op definitions are unique per code location, so each cluster's are prefixed with its job
    name; the graph invokes them under the plain node name (``call_webhook``) shown in the UI."""
    return f"{plan.job_name}__{node_name}"


def start_op(plan: ClusterPlan) -> OpDefinition:
    def compute(context, inputs: dict[str, Any]) -> Iterator[Output]:
        items = seed_items(list(context.op_config["inputs"]))
        context.log.info(f"run starts with {len(items)} input item(s)")
        yield Output(items, "items", metadata={"items": len(items)})

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, START_OP),
        outs={"items": Out(DagsterAny)},
        config_schema={
            "inputs": Field(
                Array(Permissive()),
                default_value=[{}],
                is_required=False,
                description="The run's input objects; each becomes one root item.",
            )
        },
        description="The run's inputs (from its trigger or launch call) as root items.",
    )


def split_op(
    node: SatelliteNode,
    plan: ClusterPlan,
    definition: SatelliteDefinition,
    sources: list[str],
    from_failures: bool,
) -> OpDefinition:
    """Gather the items for ``node`` from its sources and cut them into chunks (mapped steps)."""

    def compute(context, inputs: dict[str, Any]) -> Iterator[DynamicOutput | Output]:
        items = _gather(inputs, from_failures)
        size = chunk_size(len(items), plan.sla.name, batched=definition.batched)
        chunks = split(items, size)
        context.log.info(
            f"{node.id}: {len(items)} item(s) in {len(chunks)} chunk(s) of up to {size}"
        )
        keys = []
        for i, chunk in enumerate(chunks):
            keys.append(f"c{i:05d}")
            yield DynamicOutput(chunk, mapping_key=keys[-1], output_name="chunks")
        yield Output({"satellite": node.id, "items": len(items), "chunks": keys}, "manifest")

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, f"{node.op_name}__chunks"),
        ins={name: In(DagsterAny) for name in sources},
        outs={"chunks": DynamicOut(DagsterAny), "manifest": Out(DagsterAny)},
        description=f"Batches the items for '{node.id}' into chunks.",
        tags={"exosphere/role": "split"},
    )


def _gather(inputs: dict[str, Any], from_failures: bool) -> list[Item]:
    items: list[Item] = []
    for name in sorted(inputs):
        value = inputs[name]
        for entry in value:
            if from_failures:  # collected ChunkReports of routed satellites
                items.extend(f.to_failure_item() for f in entry.failed)
            elif isinstance(entry, Item):  # the start op's plain list
                items.append(entry)
            else:  # collected lists of items from a mapped parent
                items.extend(entry)
    return items


def satellite_op(
    node: SatelliteNode,
    plan: ClusterPlan,
    definition: SatelliteDefinition,
    op_tags: dict[str, Any],
    log_sinks: list[tuple[SatelliteNode, SatelliteDefinition]],
) -> OpDefinition:
    """One satellite over one chunk: the step whose many mapped copies do the work."""

    def compute(context, inputs: dict[str, Any]) -> Iterator[Output]:
        items: list[Item] = inputs["chunk"]
        chunk_key = context.get_mapping_key() or "all"
        run = context.run
        root_run_id = run.root_run_id or run.run_id
        store = checkpoint_store_for(context.instance)
        shared = base_scope(plan, run, {})
        forwarder = LogForwarder(plan, log_sinks, run.run_id, base_scope=shared)
        log = StepLog(context.log, forwarder, node.id)
        try:
            try:
                secrets = resolve_secrets(plan.secrets, node.secrets)
            except SecretResolutionError as exc:
                log.error(f"{node.id}: {exc}")
                failed = [
                    FailedItem(item, node.id, str(exc), type(exc).__name__, 0) for item in items
                ]
                report = ChunkReport(node.id, chunk=chunk_key, items_in=len(items), failed=failed)
                yield from _outputs(log, node, [], report)
                return
            job = ChunkJob(
                node=node,
                definition=definition,
                base_scope={**shared, "secrets": secrets},
                log=log,
                run_id=run.run_id,
                cluster=plan.identifier,
                checkpoint=store.log_for(root_run_id, node.op_name, chunk_key),
                secret_values=(*secrets.values(), *redaction_values(plan.secrets)),
            )
            children, report = run_chunk(job, items)
            report.chunk = chunk_key
            yield from _outputs(log, node, children, report)
        finally:
            forwarder.flush()

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, node.op_name),
        ins={"chunk": In(DagsterAny)},
        outs={"items": Out(DagsterAny, is_required=False), "report": Out(DagsterAny)},
        description=f"{node.name} ({node.uses})",
        tags=op_tags,
        retry_policy=STEP_RETRY,
    )


def _outputs(
    log: StepLog, node: SatelliteNode, children: list[Item], report: ChunkReport
) -> Iterator[Output]:
    log.info(
        f"{node.id}: {report.items_in} in, {report.succeeded} succeeded, {len(report.failed)} failed, "
        f"{report.outputs} out" + (f", {report.resumed} from checkpoint" if report.resumed else "")
    )
    yield Output(
        children,
        "items",
        metadata={
            "items_out": report.outputs,
            "item_ids": MetadataValue.text(
                ", ".join(c.id for c in children[:MAX_LISTED])
                + (" ..." if len(children) > MAX_LISTED else "")
            ),
        },
    )
    failures = "\n".join(
        f"| {f.item.id} | {f.attempts} | {f.error[:200].replace('|', '/').replace(chr(10), ' ')} |"
        for f in report.failed[:MAX_LISTED]
    )
    yield Output(
        report,
        "report",
        metadata={
            "items_in": report.items_in,
            "succeeded": report.succeeded,
            "failed": len(report.failed),
            "resumed_from_checkpoint": report.resumed,
            "attempts": report.attempts,
            **{k: v for k, v in report.metrics.items()},
            **_throughput(report.metrics),
            "failures": MetadataValue.md("| item | attempts | error |\n|---|---|---|\n" + failures)
            if report.failed
            else MetadataValue.text("none"),
        },
    )


def missing_chunks(
    manifests: list[dict[str, Any]], reports: dict[str, list[ChunkReport]]
) -> list[str]:
    """Chunk steps a manifest announced but whose report never arrived: lost items."""
    missing = []
    for manifest in manifests:
        seen = {r.chunk for r in reports.get(manifest["satellite"], [])}
        missing.extend(
            f"{manifest['satellite']}[{key}]" for key in manifest["chunks"] if key not in seen
        )
    return missing


def _throughput(metrics: dict[str, float]) -> dict[str, float]:
    """Completion tokens per second, when an LLM satellite reported its token counts."""
    tokens, seconds = metrics.get("llm/completion_tokens"), metrics.get("llm/seconds")
    return {"llm/tokens_per_second": round(tokens / seconds, 2)} if tokens and seconds else {}


def summary_op(
    plan: ClusterPlan, report_inputs: dict[str, str], manifest_inputs: list[str]
) -> OpDefinition:
    """Add up every satellite's reports; fail the run only if an item failed with no handler."""
    routed = plan.routed_nodes()

    def compute(context, inputs: dict[str, Any]) -> Iterator[Output]:
        reports = {report_inputs[n]: v for n, v in inputs.items() if n in report_inputs}
        manifests = [v for n, v in inputs.items() if n.startswith("manifest_")]
        missing = missing_chunks(manifests, reports)
        if missing:
            raise Failure(
                description="items were never processed: chunk steps "
                + ", ".join(missing)
                + " did not run. This happens when a run whose process was "
                "killed is re-executed 'from failure' (Dagster does not re-create mapped steps "
                "that never started). Re-execute all steps instead (`exosphere rerun RUN_ID`): "
                "checkpoints make finished items free, so no item is processed twice."
            )
        totals = summarise(plan, reports)
        unhandled = totals["failed_unhandled"]
        context.instance.add_run_tags(
            context.run_id,
            {
                "exosphere/items": str(totals["items"]),
                "exosphere/succeeded": str(totals["succeeded"]),
                "exosphere/routed": str(totals["routed_to_failure"]),
                "exosphere/failed": str(unhandled),
            },
        )
        metadata = {k: v for k, v in totals.items() if k != "per_satellite"}
        metadata["per_satellite"] = MetadataValue.md(_table(totals["per_satellite"], routed))
        if unhandled:
            raise Failure(
                description=f"{unhandled} item(s) failed with no failure branch to take them "
                f"(see the failed satellites' 'failures' metadata)",
                metadata=metadata,
            )
        yield Output(None, "result", metadata=metadata)

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, SUMMARY_OP),
        ins={name: In(DagsterAny) for name in [*report_inputs, *manifest_inputs]},
        outs={"result": Out(DagsterAny)},
        description="Counts items in, succeeded and routed to failure; fails on unhandled failures.",
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
    return {
        "items": succeeded + routed + unhandled,
        "succeeded": succeeded,
        "routed_to_failure": routed,
        "failed_unhandled": unhandled + branch_failed,
        "per_satellite": per,
    }


def _table(per: dict[str, dict[str, int]], routed: frozenset[str]) -> str:
    rows = ["| satellite | in | succeeded | failed | resumed |", "|---|---|---|---|---|"]
    for node_id, r in per.items():
        mark = " (routed)" if node_id in routed and r["failed"] else ""
        rows.append(
            f"| {node_id} | {r['in']} | {r['succeeded']} | {r['failed']}{mark} | {r['resumed']} |"
        )
    return "\n".join(rows)


def base_scope(plan: ClusterPlan, run: Any, secrets: dict[str, str]) -> dict[str, Any]:
    """Template values shared by every item of a run (``cluster.*``, ``run.*``, secrets)."""
    trigger_time = run.tags.get(TRIGGER_TIME_TAG)
    started = datetime.now(UTC)
    start = datetime.fromisoformat(trigger_time) if trigger_time else started
    return {
        "cluster": {
            "identifier": plan.identifier,
            "title": plan.title,
            "description": plan.description,
            "sla": plan.sla.name,
            "trigger": plan.trigger_text,
        },
        "run": {
            "id": run.run_id,
            "started_at": started.isoformat(),
            "trigger_time": start.isoformat(),
            "deadline": (start + timedelta(hours=plan.sla.hours)).isoformat(),
        },
        "secrets": secrets,
    }

"""The Dagster ops a cluster is built from: one op per satellite (mapped over chunks), the start
op and one gathering op per re-chunk point (each cuts a segment's chunks), and the summary.
Satellites know nothing of Dagster; this is the wrapper. See segments.py for where chunks are cut.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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

from exosphere_dagster.cost import StepRecord, engine_and_model, record_step
from exosphere_dagster.runtime.chunking import run_chunk_size, split
from exosphere_dagster.runtime.items import Chunk, ChunkReport, FailedItem, Item, seed_items
from exosphere_dagster.runtime.secrets import redact, redaction_values
from exosphere_dagster.segments import START, Segment
from exosphere_dagster.step_runner import StepRunner
from yaml_loader.ir import ClusterPlan, SatelliteNode

START_OP = START
STEP_RETRY = RetryPolicy(max_retries=2, delay=5)  # step/process loss; items retry inside a step
MAX_LISTED = 50  # item ids / failures shown in a step's metadata and error events
RunnerFactory = Callable[[Any], StepRunner]  # step context -> runner set up for that step
Results = dict[tuple[str, str], tuple[list[Item], ChunkReport]]  # (node id, chunk) -> outcome


def definition_name(plan: ClusterPlan, node_name: str) -> str:
    """Op definitions are unique per code location, so each cluster's are prefixed with its job
    name; the graph invokes them under the plain node name (``call_webhook``) shown in the UI."""
    return f"{plan.job_name}__{node_name}"


def chunk_outputs(
    items: list[Item], size: int, cost: dict[str, Any] | None = None
) -> Iterator[DynamicOutput | Output]:
    chunks = {f"c{i:05d}": chunk for i, chunk in enumerate(split(items, size))}
    for key, chunk in chunks.items():
        yield DynamicOutput(Chunk(key, chunk), mapping_key=key, output_name="chunks")
    metadata = {"items": len(items), "chunks": len(chunks), **(cost or {})}
    yield Output(chunks, "manifest", metadata=metadata)


def cost_metadata(record: StepRecord) -> dict[str, Any]:
    """A step's compute seconds, pool and cost (cost.py) as Dagster metadata."""
    metadata: dict[str, Any] = {
        **record.metrics,
        "pool": MetadataValue.text(record.pool or "(none)"),
        "cost/prices": MetadataValue.text(record.prices),
    }
    if record.notes:
        metadata["cost/notes"] = MetadataValue.text("\n".join(record.notes))
    return metadata


def light_step_cost(context: Any, started: float) -> dict[str, Any]:
    """The cost metadata of a step that only moves items (start, gathering, summary)."""
    return cost_metadata(record_step(context.op.tags, time.perf_counter() - started))


def _segment_chunk_size(plan: ClusterPlan, count: int, batched: bool) -> int:
    """No more chunks than the run's executor runs at once buys (times the tier's chunks per
    worker, runtime/chunking.py): each chunk is a step per satellite."""
    from dagster import OpExecutionContext

    from exosphere_dagster.executor import run_workers

    context = OpExecutionContext.get()
    workers = run_workers(context.run_config, context.job_def.executor_def.name)
    return run_chunk_size(count, plan.sla.name, workers, batched=batched)


def start_op(
    plan: ClusterPlan, segment: Segment, batched: bool, check_config: Callable[[Any], list[str]]
) -> OpDefinition:
    """The run's inputs (from its trigger or launch call) as root items, cut into chunks. Edited
    satellite configs are checked here, before any item runs."""

    def compute(context, inputs: dict[str, Any]) -> Iterator[DynamicOutput | Output]:
        started = time.perf_counter()
        problems = check_config(context.run_config)
        if problems:
            raise Failure(
                description="this run's satellite config is invalid:\n" + "\n".join(problems),
                allow_retries=False,
            )
        redaction_values(plan.secrets)  # item ids never carry a secret (items.child_id)
        items = seed_items(list(context.op_config["inputs"]))
        size = _segment_chunk_size(plan, len(items), batched)
        context.log.info(f"run starts with {len(items)} input item(s), chunks of up to {size}")
        yield from chunk_outputs(items, size, light_step_cost(context, started))

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, START_OP),
        outs={"chunks": DynamicOut(DagsterAny), "manifest": Out(DagsterAny)},
        config_schema={
            "inputs": Field(
                Array(Permissive()),
                default_value=[{}],
                is_required=False,
                description="The run's input objects; each becomes one root item.",
            )
        },
        description="The run's inputs (from its trigger or launch call) as root items, in chunks.",
        tags={"exosphere/role": "start"},
    )


def complete(
    runner: StepRunner,
    segment: Segment,
    manifest: dict[str, list[Item]],
    have: set[tuple[str, str]],
    targets: set[str],
) -> Results:
    """Run inline what ``targets`` of ``segment`` still owe for any chunk of ``manifest``: the
    chunks whose steps never ran (a killed run re-executed from failure)."""
    caught: Results = {}
    for key, items in manifest.items():
        missing = {t for t in targets if (t, key) not in have}
        if missing:
            runner.context.log.warning(
                f"chunk {key} of {', '.join(sorted(missing))} never ran in its own step "
                "(its run was killed); running it here"
            )
            for node_id, result in runner.run_inline(segment, key, items, missing).items():
                caught[(node_id, key)] = result
    return caught


def gather_op(
    plan: ClusterPlan,
    segment: Segment,
    upstream: dict[str, Segment],
    batched: bool,
    make_runner: RunnerFactory,
) -> OpDefinition:
    """Collect the items (or, for the failure branch, the failed items) of ``segment.sources``
    and cut them into the segment's chunks: the one extra node per fan-out point."""
    segments = {s.name: s for s in upstream.values()}

    def compute(context, inputs: dict[str, Any]) -> Iterator[DynamicOutput | Output]:
        started = time.perf_counter()
        results: Results = {}
        for source in segment.sources:
            for value in inputs[f"from_{plan.node(source).op_name}"]:
                if isinstance(value, ChunkReport):  # failure branch: reports of routed nodes
                    results[(source, value.chunk)] = ([], value)
                else:
                    results[(source, value.key)] = (value.items, None)  # type: ignore[assignment]
        caught: Results = {}
        runner = make_runner(context)
        try:
            for name, seg in segments.items():
                targets = {s for s in segment.sources if s in seg.ids()}
                caught.update(
                    complete(runner, seg, inputs[f"manifest_{name}"], set(results), targets)
                )
        finally:
            runner.close()
        results.update((k, v) for k, v in caught.items() if k[0] in segment.sources)
        items: list[Item] = []
        for _, (children, report) in sorted(results.items()):
            if segment.from_failures:
                items.extend(f.to_failure_item() for f in report.failed)
            else:
                items.extend(children)
        size = _segment_chunk_size(plan, len(items), batched)
        context.log.info(f"{len(items)} item(s) in chunks of up to {size}")
        yield from chunk_outputs(items, size, light_step_cost(context, started))
        yield Output([r for _, r in caught.values()], "caught_up")

    sources = [f"from_{plan.node(s).op_name}" for s in segment.sources]
    manifests = [f"manifest_{name}" for name in segments]
    kind = "failed items of " if segment.from_failures else "items of "
    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, segment.name),
        ins={name: In(DagsterAny) for name in [*sources, *manifests]},
        outs={
            "chunks": DynamicOut(DagsterAny),
            "manifest": Out(DagsterAny),
            "caught_up": Out(DagsterAny),
        },
        description=f"Collects the {kind}{', '.join(segment.sources)} and cuts them into chunks.",
        tags={"exosphere/role": "gather"},
    )


def satellite_op(
    plan: ClusterPlan,
    node: SatelliteNode,
    inputs: list[str],
    op_tags: dict[str, Any],
    config_schema: Any,
    make_runner: RunnerFactory,
) -> OpDefinition:
    """One satellite over one chunk: the op whose mapped copies (one per chunk) do the work. A
    chunk with an item that failed and has no failure branch ends red, naming the item, after
    its good items are checkpointed: re-executing from failure retries exactly that item."""
    handled = node.id in plan.routed_nodes()

    def compute(context, ins: dict[str, Any]) -> Iterator[Output]:
        started = time.perf_counter()
        chunks: list[Chunk] = [ins[name] for name in sorted(ins)]
        key = chunks[0].key
        runner = make_runner(context)
        try:
            children, report = runner.run(node, key, [i for c in chunks for i in c.items])
            _log_failures(context, runner, node, report, handled)
        finally:
            runner.close()
        cost = _satellite_cost(context, runner, node, report, time.perf_counter() - started)
        if report.failed and not handled:
            raise Failure(
                description=_failure_text(node, report),
                metadata={**_report_metadata(report), **cost},
                allow_retries=False,  # items were retried inside the step already
            )
        yield Output(Chunk(key, children), "items", metadata=_items_metadata(children))
        yield Output(report, "report", metadata={**_report_metadata(report), **cost})

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, node.op_name),
        ins={name: In(DagsterAny) for name in inputs},
        outs={"items": Out(DagsterAny), "report": Out(DagsterAny)},
        config_schema=config_schema,
        description=f"{node.name} ({node.uses})",
        tags=op_tags,
        retry_policy=STEP_RETRY,
    )


def _satellite_cost(
    context: Any, runner: StepRunner, node: SatelliteNode, report: ChunkReport, seconds: float
) -> dict[str, Any]:
    """The step's compute, pool and cost, added to its report's metrics so that the summary
    adds them up (cost.py): wall seconds x requests on its pool, plus provider tokens."""
    configured = runner.node_config(node)
    engine, model = engine_and_model(configured.config, runner.definitions[node.id].config_model)
    record = record_step(context.op.tags, seconds, report.metrics, engine, model)
    report.metrics.update(record.metrics)
    for note in record.notes:
        context.log.warning(f"{node.id}: cost not complete: {note}")
    return {k: v for k, v in cost_metadata(record).items() if k not in record.metrics}


def _log_failures(
    context: Any, runner: StepRunner, node: SatelliteNode, report: ChunkReport, handled: bool
) -> None:
    """One error event per failed item (up to MAX_LISTED), naming it and its lineage."""
    verdict = "routed to the failure branch" if handled else "with no failure branch to take it"
    for failed in report.failed[:MAX_LISTED]:
        context.log.error(
            f"{node.id}: item {failed.item.id} failed after {failed.attempts} attempt(s), "
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


def _failure_text(node: SatelliteNode, report: ChunkReport) -> str:
    lines = [
        f"{len(report.failed)} item(s) of chunk {report.chunk} failed at '{node.id}' with no "
        f"failure branch to take them ({report.succeeded} succeeded and are checkpointed):"
    ]
    lines += [f"  {f.item.id}: {f.error}" for f in report.failed[:MAX_LISTED]]
    lines.append(
        "Fix the cause, then re-execute the run from failure (Dagster UI: Re-execute > From "
        "failure): only the failed items run again. Or add `failure: from:` to route them."
    )
    return "\n".join(lines)


def _items_metadata(children: list[Item]) -> dict[str, Any]:
    listed = ", ".join(c.id for c in children[:MAX_LISTED])
    return {
        "items_out": len(children),
        "item_ids": MetadataValue.text(listed + (" ..." if len(children) > MAX_LISTED else "")),
    }


def _report_metadata(report: ChunkReport) -> dict[str, Any]:
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
        **report.metrics,
        **_throughput(report.metrics),
        "failures": MetadataValue.md("| item | attempts | error |\n|---|---|---|\n" + failures)
        if report.failed
        else MetadataValue.text("none"),
    }


def _throughput(metrics: dict[str, float]) -> dict[str, float]:
    """Completion tokens per second, when an LLM satellite reported its token counts."""
    tokens, seconds = metrics.get("llm/completion_tokens"), metrics.get("llm/seconds")
    return {"llm/tokens_per_second": round(tokens / seconds, 2)} if tokens and seconds else {}

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
    Field,
    In,
    OpDefinition,
    Out,
    Output,
    Permissive,
    RetryPolicy,
)

from exosphere_dagster.resolve.chunking import keyed_chunks
from exosphere_dagster.resolve.execution_plan import ChunkPolicy, NodePlan
from exosphere_dagster.resolve.segments import START, Segment
from exosphere_dagster.runtime.items import (
    Chunk,
    ChunkReport,
    Item,
    PackedItems,
    pack,
    seed_items,
)
from exosphere_dagster.runtime.secrets import redaction_values
from exosphere_dagster.runtime.step_runner import StepRunner
from exosphere_dagster.translate.deployment_resource import RESOURCE_KEY, deployment_of
from exosphere_dagster.translate.executor import segment_chunk_size
from exosphere_dagster.translate.step_reports import (
    failure_text,
    items_metadata,
    log_failures,
    report_metadata,
    step_cost_of,
)
from exosphere_dagster.translate.ui import (
    CHUNK_KEYS,
    CHUNK_TYPE,
    MANIFEST_TYPE,
    REPORTS_TYPE,
    InvalidRunConfig,
    ItemFailed,
    op_description,
)
from yaml_loader.ir import ClusterPlan

START_OP = START
STEP_RESOURCES = {RESOURCE_KEY}  # every step reads the deployment from its resource
RunnerFactory = Callable[[Any], StepRunner]  # step context -> runner set up for that step
Results = dict[tuple[str, str], tuple[list[Item], ChunkReport]]  # (node id, chunk) -> outcome


def definition_name(plan: ClusterPlan, node_name: str) -> str:
    """Op definitions are unique per code location, so each cluster's are prefixed with its job
    name; the graph invokes them under the plain node name (``call_webhook``) shown in the UI."""
    return f"{plan.job_name}__{node_name}"


def chunk_outputs(items: list[Item], size: int) -> Iterator[DynamicOutput | Output]:
    yield from keyed_outputs(keyed_chunks(items, size))


def keyed_outputs(chunks: dict[str, list[Item]]) -> Iterator[DynamicOutput | Output]:
    """One mapped output per chunk, then the manifest: each chunk's items, packed once for
    both (the chunk's output is stored as its manifest entry's bytes)."""
    manifest: dict[str, PackedItems] = {}
    for key, chunk in chunks.items():
        packed = pack(chunk)
        manifest[key] = PackedItems(packed, len(chunk))
        yield DynamicOutput(Chunk(key, chunk, packed), mapping_key=key, output_name="chunks")
    count = sum(len(c) for c in chunks.values())
    yield Output(manifest, "manifest", metadata={"items": count, "chunks": len(chunks)})


PLACED = "chunks"  # a gathering step's checkpoint log (chunk name) of where each item went


def placed_chunks(runner: StepRunner, segment: Segment, items: list[Item], size: int) -> Any:
    """``items`` in the segment's chunks, each item in the chunk an earlier run of this step
    put it in (kept in the root run's checkpoints): re-executed, the step adds the retried
    items' children as new chunks instead of shifting the others into other chunks."""
    log = runner.store.log_for(runner.root_run_id, segment.name, PLACED)
    try:
        placed = log.load_state().get(PLACED) or {}
        chunks = keyed_chunks(items, size, placed)
        now = {item.id: key for key, part in chunks.items() for item in part}
        if any(placed.get(i) != k for i, k in now.items()):
            log.record_state(PLACED, {**placed, **now})
    finally:
        log.close()
    return chunks


def step_retry(planned: NodePlan) -> RetryPolicy:
    """Dagster's retry of a step lost with its process (items retry inside a step)."""
    return RetryPolicy(max_retries=planned.step_retries, delay=planned.step_retry_delay)


def start_op(
    plan: ClusterPlan,
    segment: Segment,
    chunk: ChunkPolicy,
    check_config: Callable[[Any], list[str]],
) -> OpDefinition:
    """The run's inputs (from its trigger or launch call) as root items, cut into chunks. Edited
    satellite configs are checked here, before any item runs."""

    def compute(context, inputs: dict[str, Any]) -> Iterator[DynamicOutput | Output]:
        problems = check_config(context.run_config)
        if problems:
            raise InvalidRunConfig(
                description="this run's satellite config is invalid:\n" + "\n".join(problems),
                allow_retries=False,
            )
        # item ids never carry one of the run's secrets (items.child_id)
        items = seed_items(list(context.op_config["inputs"]), redaction_values(plan.secrets))
        size = segment_chunk_size(context, chunk, items)
        context.log.info(f"run starts with {len(items)} input item(s), chunks of up to {size}")
        yield from chunk_outputs(items, size)

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, START_OP),
        outs={"chunks": DynamicOut(CHUNK_TYPE), "manifest": Out(MANIFEST_TYPE)},
        config_schema={
            "inputs": Field(
                Array(Permissive()),
                default_value=[{}],
                is_required=False,
                description="The run's input objects; each becomes one root item.",
            )
        },
        description="The run's inputs (from its trigger or launch call) as root items, in "
        "chunks.\n\n" + CHUNK_KEYS.format(op="a_satellite"),
        tags={"exosphere/role": "start"},
        required_resource_keys=STEP_RESOURCES,
    )


def complete(
    runner: StepRunner,
    segment: Segment,
    manifest: dict[str, PackedItems],
    have: set[tuple[str, str]],
    targets: set[str],
    keep_items: bool = True,
) -> Results:
    """Run inline what ``targets`` of ``segment`` still owe for any chunk of ``manifest``: the
    chunks whose steps never ran (a killed run re-executed from failure). Only the items of
    ``targets`` are kept, and none without ``keep_items``: the summary of a million-item run
    killed half-way would otherwise hold every item each satellite made (1.2 GB,
    bench/large_run.py)."""
    caught: Results = {}
    for key, items in manifest.items():
        missing = {t for t in targets if (t, key) not in have}
        if missing:
            runner.context.log.warning(
                f"chunk {key} of {', '.join(sorted(missing))} never ran in its own step "
                "(its run was killed); running it here"
            )
            ran = runner.run_inline(segment, key, items.unpack(), missing)
            for node_id, (children, report) in ran.items():
                kept = children if keep_items and node_id in targets else []
                caught[(node_id, key)] = (kept, report)
    return caught


def gather_op(
    plan: ClusterPlan,
    segment: Segment,
    upstream: dict[str, Segment],
    chunk: ChunkPolicy,
    make_runner: RunnerFactory,
) -> OpDefinition:
    """Collect the items (or, for the failure branch, the failed items) of ``segment.sources``
    and cut them into the segment's chunks: the one extra node per fan-out point."""
    segments = {s.name: s for s in upstream.values()}

    def compute(context, inputs: dict[str, Any]) -> Iterator[DynamicOutput | Output]:
        results: Results = {}
        for source in segment.sources:
            for value in inputs[f"from_{plan.node(source).op_name}"]:
                if isinstance(value, list):  # failure branch: reports of routed nodes
                    for report in value:
                        if report.satellite == source:
                            results[(source, report.chunk)] = ([], report)
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
            results.update((k, v) for k, v in caught.items() if k[0] in segment.sources)
            items: list[Item] = []
            for _, (children, report) in sorted(results.items()):
                if segment.from_failures:
                    items.extend(f.to_failure_item() for f in report.failed)
                else:
                    items.extend(children)
            size = segment_chunk_size(context, chunk, items)
            chunks = placed_chunks(runner, segment, items, size)
        finally:
            runner.close()
        context.log.info(f"{len(items)} item(s) in {len(chunks)} chunk(s) of up to {size}")
        yield from keyed_outputs(chunks)
        yield Output([r for _, r in caught.values()], "caught_up")

    sources = [f"from_{plan.node(s).op_name}" for s in segment.sources]
    manifests = [f"manifest_{name}" for name in segments]
    kind = "failed items of " if segment.from_failures else "items of "
    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, segment.name),
        ins={name: In(DagsterAny) for name in [*sources, *manifests]},
        outs={
            "chunks": DynamicOut(CHUNK_TYPE),
            "manifest": Out(MANIFEST_TYPE),
            "caught_up": Out(REPORTS_TYPE),
        },
        description=f"Collects the {kind}{', '.join(segment.sources)} and cuts them into chunks.",
        tags={"exosphere/role": "gather"},
        required_resource_keys=STEP_RESOURCES,
    )


def reports_input(items_input: str) -> str:
    """``from_parse`` -> ``reports_from_parse``: the reports of the chunk so far, from a parent in
    the same segment; the segment's last satellite carries them all to the summary, one edge."""
    return f"reports_{items_input}"


def satellite_op(
    plan: ClusterPlan,
    planned: NodePlan,
    inputs: list[str],
    op_tags: dict[str, Any],
    config_schema: Any,
    make_runner: RunnerFactory,
) -> OpDefinition:
    """One satellite over one chunk: the op whose mapped copies (one per chunk) do the work.

    Its good items and its report are yielded first, always: the steps after it start on them
    (the executor's ``require_upstream_step_success: false``) and the summary counts the chunk.
    Then a chunk with an item that failed and has no failure branch (nor a
    ``min-success-ratio``, which the summary checks over the whole run) ends red, naming the
    item; its good items are checkpointed, so re-executing from failure retries exactly it."""
    node, definition = planned.node, planned.definition
    handled = node.id in plan.routed_nodes()
    tolerated = node.min_success_ratio is not None  # the summary decides over every chunk

    def compute(context, ins: dict[str, Any]) -> Iterator[Output]:
        started = time.perf_counter()
        chunks: list[Chunk] = [ins[name] for name in sorted(ins) if name in inputs]
        before = [r for name in sorted(ins) if name not in inputs for r in ins[name]]
        key = chunks[0].key
        runner = make_runner(context)
        try:
            children, report = runner.run(node, key, [i for c in chunks for i in c.items])
            log_failures(context, runner, node, report, handled, tolerated)
            configured = runner.node_config(node)
        finally:
            runner.close()
        seconds = time.perf_counter() - started
        cost = step_cost_of(context, deployment_of(context), report, planned, seconds, configured)
        yield Output(Chunk(key, children), "items", metadata=items_metadata(children))
        reports = [report, *before]  # the segment's end hands them all to the summary
        yield Output(reports, "report", metadata=report_metadata(report, cost))
        if report.failed and not handled and not tolerated:
            raise ItemFailed(
                description=failure_text(node, report),
                metadata=report_metadata(report, cost),
                allow_retries=False,  # items were retried inside the step already
            )

    return OpDefinition(
        compute_fn=compute,
        name=definition_name(plan, node.op_name),
        ins={
            **{name: In(CHUNK_TYPE) for name in inputs},
            **{reports_input(name): In(REPORTS_TYPE) for name in inputs if name != "chunk"},
        },
        outs={"items": Out(CHUNK_TYPE), "report": Out(REPORTS_TYPE)},
        config_schema=config_schema,
        description=op_description(node, definition),
        tags=op_tags,
        retry_policy=step_retry(planned),
        required_resource_keys=STEP_RESOURCES,
    )

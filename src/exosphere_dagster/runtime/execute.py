"""Run one satellite over one chunk of items: per-item templates, retries, concurrency, checkpoints.

This is the body of every satellite step, kept free of Dagster so it can be tested and
benchmarked alone. Items never raise out of here: each ends as outputs or as a FailedItem.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from exosphere_dagster.runtime.checkpoint import CheckpointLog
from exosphere_dagster.runtime.items import ChunkReport, FailedItem, Item, build_scope
from exosphere_dagster.runtime.secrets import redact, redacted_output
from satellite_ops.context import BatchItem, PayloadStore, SatelliteContext
from satellite_ops.errors import FatalError, RetryableError
from satellite_ops.registry import SatelliteDefinition
from yaml_loader.ir import SatelliteNode
from yaml_loader.templates import TemplateEvaluationError, render_value

MAX_ERROR_CHARS = 2000


class OutputShapeError(FatalError):
    """A satellite returned something other than a list of objects."""


@dataclass
class ChunkJob:
    """Everything one step needs besides the items themselves."""

    node: SatelliteNode
    definition: SatelliteDefinition
    base_scope: Mapping[str, Any]  # cluster, run and the node's resolved secrets
    log: logging.Logger | logging.LoggerAdapter
    run_id: str = ""
    cluster: str = ""
    checkpoint: CheckpointLog | None = None
    store: PayloadStore | None = None
    sleep: Any = asyncio.sleep  # injectable for tests of the backoff schedule
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    metrics: dict[str, float] = field(default_factory=dict)  # satellites add token counts etc.

    @property
    def concurrency(self) -> int:
        return self.node.concurrency or self.definition.max_concurrency


def run_chunk(job: ChunkJob, items: list[Item]) -> tuple[list[Item], ChunkReport]:
    """Process ``items``; return the new items (children) and the report with failures."""
    with redacted_output():
        return asyncio.run(_run_chunk(job, items))


async def _run_chunk(job: ChunkJob, items: list[Item]) -> tuple[list[Item], ChunkReport]:
    report = ChunkReport(satellite=job.node.id, items_in=len(items))
    done = job.checkpoint.load() if job.checkpoint else {}
    results: dict[str, list[Any] | FailedItem] = {}
    pending = []
    for item in items:
        if item.id in done:
            results[item.id] = done[item.id]
            report.resumed += 1
        else:
            pending.append(item)
    started = time.perf_counter()
    try:
        if job.definition.batched:
            results.update(await _run_batched(job, pending, report))
        else:
            results.update(await _run_each(job, pending, report))
    finally:
        if job.checkpoint:
            job.checkpoint.close()
    report.metrics.update(job.metrics)
    report.metrics["seconds"] = round(time.perf_counter() - started, 4)
    children: list[Item] = []
    for item in items:
        outcome = results[item.id]
        if isinstance(outcome, FailedItem):
            report.failed.append(outcome)
            continue
        report.succeeded += 1
        if not outcome:
            report.ended += 1
        children.extend(item.child(job.node.id, i, obj) for i, obj in enumerate(outcome))
    report.outputs = len(children)
    return children, report


# -- one item at a time (bounded concurrency) -------------------------------------------------
async def _run_each(job: ChunkJob, items: list[Item], report: ChunkReport) -> dict[str, Any]:
    gate = asyncio.Semaphore(job.concurrency)
    results: dict[str, Any] = {}

    async def one(item: Item) -> None:
        async with gate:
            results[item.id] = await _attempts(job, item, report)

    await asyncio.gather(*(one(item) for item in items))
    return results


async def _attempts(job: ChunkJob, item: Item, report: ChunkReport) -> list[Any] | FailedItem:
    retry = job.node.retry
    attempt = 0
    while True:
        attempt += 1
        report.attempts += 1
        try:
            config, input_ = _resolve(job, item)
            context = _context(job, item, attempt)
            outputs = await _call(job, config, input_, context)
        except Exception as exc:  # noqa: BLE001 - every failure is the item's, never the step's
            final = attempt > retry.retries or not _retryable(exc)
            text = _error_text(job, exc)
            _item_log(job, item.id).warning(
                f"{job.node.id}: attempt {attempt}/{retry.retries + 1} failed: {text}"
                + ("" if final else " (will retry)")
            )
            if final:
                return FailedItem(item, job.node.id, text, type(exc).__name__, attempt)
            wait = retry.wait_before(attempt)
            if isinstance(exc, RetryableError) and exc.retry_after is not None:
                wait = max(wait, min(exc.retry_after, retry.max_delay))
            await job.sleep(wait)
            continue
        if job.checkpoint:
            job.checkpoint.record(item.id, outputs)
        return outputs


async def _call(job: ChunkJob, config: Any, input_: Any, context: SatelliteContext) -> list[Any]:
    definition = job.definition
    kwargs = {"context": context} if definition.accepts_context else {}
    if definition.is_async:
        pending = definition.fn(config, input_, **kwargs)
    else:
        pending = asyncio.to_thread(definition.fn, config, input_, **kwargs)
    timeout = job.node.timeout
    result = await (asyncio.wait_for(pending, timeout) if timeout else pending)
    return _check_outputs(job, result)


# -- whole chunk as one call (GPU batching) --------------------------------------------------
async def _run_batched(job: ChunkJob, items: list[Item], report: ChunkReport) -> dict[str, Any]:
    results: dict[str, Any] = {}
    attempt = 0
    remaining = list(items)
    while remaining:
        attempt += 1
        batch: list[BatchItem] = []
        runnable: list[Item] = []
        for item in remaining:
            report.attempts += 1
            try:
                config, input_ = _resolve(job, item)
            except Exception as exc:  # noqa: BLE001 - bad config for one item fails that item
                results[item.id] = FailedItem(
                    item, job.node.id, _error_text(job, exc), type(exc).__name__, attempt
                )
                continue
            batch.append(BatchItem(config, input_, _context(job, item, attempt)))
            runnable.append(item)
        if not batch:
            break
        try:
            if job.definition.is_async:
                raw = await job.definition.fn(batch)
            else:
                raw = await asyncio.to_thread(job.definition.fn, batch)
            if not isinstance(raw, list) or len(raw) != len(batch):
                raise OutputShapeError(
                    f"batched satellite returned {type(raw).__name__} of "
                    f"{len(raw) if isinstance(raw, list) else '?'} results for {len(batch)} items"
                )
        except Exception as exc:  # noqa: BLE001 - the whole call failed: every item gets the error
            raw = [exc] * len(batch)
        remaining = []
        for item, outcome in zip(runnable, raw, strict=True):
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                outputs = _check_outputs(job, outcome)
            except Exception as exc:  # noqa: BLE001
                final = attempt > job.node.retry.retries or not _retryable(exc)
                if final:
                    results[item.id] = FailedItem(
                        item, job.node.id, _error_text(job, exc), type(exc).__name__, attempt
                    )
                else:
                    remaining.append(item)
                continue
            if job.checkpoint:
                job.checkpoint.record(item.id, outputs)
            results[item.id] = outputs
        if remaining:
            await job.sleep(job.node.retry.wait_before(attempt))
    return results


# -- helpers ------------------------------------------------------------------------------------
def _resolve(job: ChunkJob, item: Item) -> tuple[Any, Any]:
    """Render the node's templates for this item and validate the config model."""
    scope = build_scope(item, job.base_scope)
    raw_config = render_value(job.node.config, scope)
    config = job.definition.config_model.model_validate(raw_config)
    if job.node.input is not None:
        input_ = render_value(job.node.input, scope)
    else:
        input_ = item.value if isinstance(item.value, dict) else {"value": item.value}
    return config, input_


def _context(job: ChunkJob, item: Item, attempt: int) -> SatelliteContext:
    return SatelliteContext(
        log=_item_log(job, item.id),
        item_id=item.id,
        lineage=item.lineage,
        secrets=job.base_scope.get("secrets", {}),
        run_id=job.run_id,
        cluster=job.cluster,
        satellite=job.node.id,
        attempt=attempt,
        store=job.store,
        metrics=job.metrics,
    )


def _item_log(job: ChunkJob, item_id: str) -> Any:
    """A logger that tags records with the item (when the step's logger supports it)."""
    for_item = getattr(job.log, "for_item", None)
    return for_item(item_id) if for_item else job.log


def _check_outputs(job: ChunkJob, result: Any) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, dict):
        return [result]
    if isinstance(result, list | tuple) and all(isinstance(o, dict) for o in result):
        return list(result)
    raise OutputShapeError(
        f"satellite {job.definition.identifier} must return a list of objects (dicts), "
        f"returned {type(result).__name__}"
    )


def _retryable(exc: BaseException) -> bool:
    return not isinstance(exc, FatalError | ValidationError | TemplateEvaluationError)


def _error_text(job: ChunkJob, exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        text = f"invalid config after templates were filled in: {_validation_summary(exc)}"
    elif isinstance(exc, asyncio.TimeoutError | TimeoutError) and not str(exc):
        text = f"timed out after {job.node.timeout}s"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact(text, job.secret_values)[:MAX_ERROR_CHARS]


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)

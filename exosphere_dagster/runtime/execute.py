"""Run one satellite over one chunk of items: per-item templates, retries, concurrency, checkpoints.

This is the body of every satellite step, kept free of Dagster so it can be tested and
benchmarked alone (what it needs besides the items: ``runtime/chunk_job.ChunkJob``, exported
here with ``run_chunk``). Items never raise out of here: each ends as outputs or as a FailedItem,
whatever the satellite does (raise ``SystemExit`` or another ``BaseException``, return outputs
that cannot be pickled, raise an exception that cannot be printed). Only an interrupt of the
step itself propagates (``_interrupts_step``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from exosphere_dagster.runtime.chunk_job import ChunkJob as ChunkJob  # run_chunk's argument
from exosphere_dagster.runtime.items import ChunkReport, FailedItem, Item, ItemEvent, build_scope
from exosphere_dagster.runtime.log_delivery import retry_after_of
from exosphere_dagster.runtime.outcomes import describe, interrupts_step, message, retryable
from exosphere_dagster.runtime.secrets import redact, redacted_output
from exosphere_dagster.runtime.threads import Workers
from satellite_ops.config import describe_validation_error
from satellite_ops.context import BatchItem, SatelliteContext
from satellite_ops.errors import FatalError
from yaml_loader.templates import render_value

MAX_ERROR_CHARS = 2000


class OutputShapeError(FatalError):
    """A satellite returned something other than a list of objects."""


class UnstorableOutputError(FatalError):
    """An item's outputs cannot be pickled, so they can neither be checkpointed nor passed on."""


def run_chunk(job: ChunkJob, items: list[Item]) -> tuple[list[Item], ChunkReport]:
    """Process ``items``; return the new items (children) and the report with failures."""
    with redacted_output():
        return asyncio.run(_interruptible(_run_chunk(job, items)))


async def _interruptible(step: Any) -> Any:
    """Run ``step`` so that a signal handler's exception always stops it. The handler raises in
    whatever main-thread frame runs; when that is a callback of the event loop (a worker's
    future completing), ``asyncio.Handle`` catches it and only logs it, and the interrupt of a
    terminated run would be lost. The loop's exception handler takes it back: it cancels the
    step and the interrupt is raised in its place."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    caught: list[BaseException] = []

    def on_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is not None and not caught and interrupts_step(exc):
            caught.append(exc)
            task.cancel()
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(on_error)
    try:
        return await step
    except asyncio.CancelledError:
        if caught:
            raise caught[0] from None
        raise


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
    workers = Workers(f"{job.node.op_name}-worker")
    try:
        if job.definition.batched:
            results.update(await _run_batched(job, workers, pending, report))
        else:
            results.update(await _run_each(job, workers, pending, report))
        if stuck := workers.busy():
            job.log.warning(
                f"{job.node.id}: {stuck} call(s) that timed out are still running; their "
                "threads are abandoned (Python cannot stop a thread) and end when they return"
            )
    finally:
        workers.shutdown()
        if job.checkpoint:
            job.checkpoint.close()
    report.metrics.update(job.metrics)
    report.events.extend(job.events)
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
        children.extend(
            item.child(job.node.id, i, obj, job.secret_values) for i, obj in enumerate(outcome)
        )
    report.outputs = len(children)
    return children, report


# -- one item at a time (bounded concurrency) -------------------------------------------------
async def _run_each(
    job: ChunkJob, workers: Workers, items: list[Item], report: ChunkReport
) -> dict[str, Any]:
    """``job.concurrency`` runners take the items in order from one queue: the same bound and
    start order as one task per item behind a semaphore, without a task per item."""
    results: dict[str, Any] = {}
    queue = iter(items)

    async def runner() -> None:
        for item in queue:
            results[item.id] = await _attempts(job, workers, item, report)

    await asyncio.gather(*(runner() for _ in range(min(job.concurrency, len(items)))))
    return results


async def _attempts(
    job: ChunkJob, workers: Workers, item: Item, report: ChunkReport
) -> list[Any] | FailedItem:
    attempt = 0
    while True:
        attempt += 1
        report.attempts += 1
        outcome: list[Any] | BaseException
        try:
            config, input_ = _resolve(job, item)
            accepts = job.definition.accepts_context
            kwargs = {"context": _context(job, item, attempt)} if accepts else {}
            outcome = _check_outputs(job, await _call(job, workers, config, input_, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - the item's failure, whatever it is
            if interrupts_step(exc):
                raise
            outcome = exc
        verdict = _settle(job, item, attempt, outcome)
        if not isinstance(verdict, _Retry):
            return verdict
        await job.sleep(verdict.wait)


async def _call(job: ChunkJob, workers: Workers, *args: Any, **kwargs: Any) -> Any:
    """Call the satellite once. ``timeout:`` bounds every call from the moment it starts (a
    batched satellite's one call per chunk too): a sync call's clock starts when its worker
    thread picks it up, never while it waits."""
    definition = job.definition
    timeout = job.timeout
    if definition.is_async:
        if timeout is None:
            return await definition.fn(*args, **kwargs)
        async with asyncio.timeout(timeout):
            return await definition.fn(*args, **kwargs)
    call = workers.submit(functools.partial(definition.fn, *args, **kwargs), timeout)
    ok, value = await call.done
    if not ok:
        raise value
    return value


# -- whole chunk as one call (GPU batching) --------------------------------------------------
async def _run_batched(
    job: ChunkJob, workers: Workers, items: list[Item], report: ChunkReport
) -> dict[str, Any]:
    """One call per round for every item still to do; each item's outcome is settled exactly
    as on the per-item path, and the retried items wait for the longest wait any of them asks."""
    results: dict[str, Any] = {}
    attempt = 0
    remaining = list(items)
    while remaining:
        attempt += 1
        outcomes: list[tuple[Item, list[Any] | BaseException]] = []
        batch: list[BatchItem] = []
        runnable: list[Item] = []
        for item in remaining:
            report.attempts += 1
            try:
                config, input_ = _resolve(job, item)
            except BaseException as exc:  # noqa: BLE001 - bad config for one item fails that item
                if interrupts_step(exc):
                    raise
                outcomes.append((item, exc))
                continue
            batch.append(BatchItem(config, input_, _context(job, item, attempt)))
            runnable.append(item)
        if batch:
            outcomes.extend(zip(runnable, await _call_batch(job, workers, batch), strict=True))
        remaining, waits = [], []
        for item, outcome in outcomes:
            verdict = _settle(job, item, attempt, outcome)
            if isinstance(verdict, _Retry):
                remaining.append(item)
                waits.append(verdict.wait)
            else:
                results[item.id] = verdict
        if remaining:
            await job.sleep(max(waits))
    return results


async def _call_batch(
    job: ChunkJob, workers: Workers, batch: list[BatchItem]
) -> list[list[Any] | BaseException]:
    """Each item's outcome of one batch call; a call that fails gives every item its error."""
    try:
        raw = await _call(job, workers, batch)
        if not isinstance(raw, list) or len(raw) != len(batch):
            raise OutputShapeError(
                f"batched satellite returned {type(raw).__name__} of "
                f"{len(raw) if isinstance(raw, list) else '?'} results for {len(batch)} items"
            )
    except BaseException as exc:  # noqa: BLE001 - the whole call failed
        if interrupts_step(exc):
            raise
        return [exc] * len(batch)
    outcomes: list[list[Any] | BaseException] = []
    for result in raw:
        try:
            outcomes.append(
                result if isinstance(result, BaseException) else _check_outputs(job, result)
            )
        except Exception as exc:  # noqa: BLE001 - a malformed result fails its item
            outcomes.append(exc)
    return outcomes


# -- one attempt's end, the same on both paths -------------------------------------------------
@dataclass(frozen=True)
class _Retry:
    wait: float  # seconds to wait before the next attempt


def _settle(
    job: ChunkJob, item: Item, attempt: int, outcome: list[Any] | BaseException
) -> list[Any] | FailedItem | _Retry:
    """Checkpoint an attempt's outputs, or log its failure and decide: fail the item now (a
    fatal error, or no retries left) or retry it after the backoff / the Retry-After asked."""
    if isinstance(outcome, list):
        try:
            if job.checkpoint:
                job.checkpoint.record(item.id, outcome)  # pickles first: a failure writes nothing
            return outcome
        except OSError:
            raise  # the checkpoint store itself is broken: the step fails, Dagster retries it
        except BaseException as exc:  # noqa: BLE001 - pickling ran the outputs' own code
            if interrupts_step(exc):
                raise
            outcome = UnstorableOutputError(
                f"output of item {item.id} cannot be stored: {describe(exc)}"
            )
    retry = job.retry
    final = attempt > retry.retries or not retryable(outcome)
    text = _error_text(job, outcome)
    _item_log(job, item.id).warning(
        f"{job.node.id}: attempt {attempt}/{retry.retries + 1} failed: {text}"
        + ("" if final else " (will retry)")
    )
    outcome_name = "attempt-failed" if final else "retry"
    job.events.append(
        ItemEvent(item.id, job.node.id, outcome_name, attempt, retry.retries + 1, text)
    )
    if final:
        return FailedItem(item, job.node.id, text, type(outcome).__name__, attempt)
    return _Retry(retry.wait_for(attempt, retry_after_of(outcome)))


# -- helpers ------------------------------------------------------------------------------------
def _resolve(job: ChunkJob, item: Item) -> tuple[Any, Any]:
    """Render the node's templates for this item and validate the config model (each item gets
    its own config; a config of plain values needs no scope and no rendering, only a copy)."""
    plain = job.plain_config
    needs_scope = plain is None or job.node.input is not None
    scope = build_scope(item, job.base_scope) if needs_scope else {}
    raw_config = dict(plain) if plain is not None else render_value(job.node.config, scope)
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
        metrics=job.metrics,
        deadline=job.deadline,
        sla=job.sla,
        state=job.state,
        batch=job.batch,
    )


def _item_log(job: ChunkJob, item_id: str) -> Any:
    """A logger that tags records with the item (when the step's logger supports it)."""
    for_item = getattr(job.log, "for_item", None)
    return for_item(item_id) if for_item else job.log


def _check_outputs(job: ChunkJob, result: Any) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, dict):
        result = [result]
    if isinstance(result, list | tuple) and all(isinstance(o, dict) for o in result):
        return [o if type(o) is dict else dict(o) for o in result]  # plain: no subclass code
    returned = type(result).__name__
    if isinstance(result, list | tuple):
        index, bad = next((i, o) for i, o in enumerate(result) if not isinstance(o, dict))
        returned = f"a {returned} whose entry {index} is {type(bad).__name__}"
    raise OutputShapeError(
        f"satellite {job.definition.identifier} must return a list of objects (dicts), "
        f"returned {returned}"
    )


def _error_text(job: ChunkJob, exc: BaseException) -> str:
    """The item's error as the event log, the failure branch and the UI show it: redacted."""
    if isinstance(exc, ValidationError):
        text = f"invalid config after templates were filled in: {describe_validation_error(exc)}"
    elif isinstance(exc, TimeoutError) and job.timeout and not message(exc):
        text = f"timed out after {job.timeout}s"
    else:
        text = describe(exc)
    return redact(text, job.secret_values)[:MAX_ERROR_CHARS]

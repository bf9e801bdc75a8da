"""Batch mode of the LLM satellites: when a chunk's prompts go through the Batch API, how a
step finds its batch again, and when it gives up waiting.

* **When.** ``engine: openai`` and ``batch: always``, or ``batch: auto`` (the default) and the
  run's SLA tier is one the deployment allows (``EXOSPHERE_BATCH_TIERS``, default ``24h``).
  ``batch: never`` always calls synchronously.
* **Deadline.** A chunk waits for its batch until ``deadline - reserve``
  (``EXOSPHERE_BATCH_RESERVE_MINUTES``, default 60). Past that point it submits nothing, and a
  batch still running is cancelled: once the server says it ended, its answered rows are used
  and the rest is answered by synchronous calls, logged and counted (``llm/sync_fallbacks``).
  Nothing else sends an item synchronously.
* **Abandoned batches.** A batch that ends without answering all its rows (``expired``,
  ``cancelled``, ``failed`` on the server, or cancelled at the deadline) keeps its answers;
  the rest go into a new, smaller batch while the deadline allows (``MAX_BATCHES_PER_CALL``
  batches per call, then the items' retry). Each is named in the log and in the step's
  metadata (``llm/abandoned_batch/<id>``). A batch whose fate is unknown (polls or its cancel
  keep failing, ``BatchUnreachable``) is never abandoned: its items fail retryably and their
  retry follows the same batch, so no row is paid twice.
* **Re-attach.** The batch id and each row's request hash are kept in the step's durable state
  (``context.state``, key ``llm-batch/<hash of the engine settings>``) before the step waits.
  Whoever runs the chunk next (a step retry, a re-execution, a new pod) finds the rows it
  needs there and follows the same batch; a batch that already ended is only downloaded.
  Rows are dropped from the state once their answers were handed to the runtime, so an item
  the runtime retries (an invalid answer, a failed row) goes out again, in a new and smaller
  batch when there is still time, synchronously when not.
* **Interruption.** A terminated run, or a call cut by the satellite's ``timeout:``, cancels
  the batch it waits for (``BatchClient.wait``) and leaves its record in the state: the next
  run of the chunk keeps the rows it answered. A killed process cannot cancel; its
  re-execution re-attaches instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from satellite_ops.context import SatelliteContext
from satellite_ops.errors import FatalError, RetryableError, SatelliteError
from satellite_ops.helpers.batch_api import (
    BatchClient,
    BatchUnreachable,
    Outcome,
    RowNotRun,
    request_line,
)
from satellite_ops.helpers.llm_engines import (
    EngineSettings,
    Generation,
    GenerationRequest,
    auth_headers,
    base_url,
    generate,
    openai_body,
)

STATE_PREFIX = "llm-batch/"
logger = logging.getLogger(__name__)


def batch_applies(mode: str, engine: str, sla: str, tiers: frozenset[str]) -> bool:
    """The one rule of batch mode: ``engine: openai`` and ``batch: always``, or ``batch: auto``
    under an SLA tier in ``tiers`` (the deployment's). The resolve stage decides it for a static
    config; a templated one is decided per item (:func:`batch_wanted`)."""
    if engine != "openai" or mode not in ("auto", "always"):
        return False
    return mode == "always" or sla in tiers


def batch_wanted(mode: str, engine: str, context: SatelliteContext | None) -> bool:
    """Whether a chunk should go through the Batch API (before the deadline is looked at):
    :func:`batch_applies` with the run's tier and the deployment's policy, as the step got them;
    outside a run (no context) only ``batch: always``."""
    if context is None:
        return batch_applies(mode, engine, "", frozenset())
    return batch_applies(mode, engine, context.sla, context.batch.tiers)


def state_key(settings: EngineSettings) -> str:
    """The state key of one group of engine settings (the API key is not part of it)."""
    public = json.dumps(asdict(replace(settings, api_key=None)), sort_keys=True, default=str)
    return STATE_PREFIX + hashlib.sha256(public.encode()).hexdigest()[:16]


def give_up_at(context: SatelliteContext) -> datetime | None:
    """When the chunk stops waiting for a batch: the deadline minus the reserve."""
    if context.deadline is None:
        return None
    return context.deadline - timedelta(seconds=context.batch.reserve_seconds)


MAX_BATCHES_PER_CALL = 3  # batches one call submits for the same items (first + resubmissions)


@dataclass
class _Call:
    """What one call of ``answer_through_batch`` learnt so far."""

    ids: list[str]
    results: dict[str, Outcome] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)  # their batch may be live: rows stay in the state
    ended: set[str] = field(default_factory=set)  # batches the server says ended
    abandoned: dict[str, int] = field(default_factory=dict)  # batch -> items it left unanswered
    created: int = 0

    def rest(self) -> list[str]:
        return [c for c in self.ids if c not in self.results and c not in self.kept]


async def answer_through_batch(
    settings: EngineSettings,
    requests: list[GenerationRequest],
    ids: list[str],
    context: SatelliteContext,
) -> list[Outcome]:
    """Answer ``requests`` (``ids[i]`` is the i-th item's id) through the Batch API; what a
    batch leaves unanswered goes into a new, smaller one, and only what the deadline leaves
    no time for is answered synchronously."""
    log, policy = context.log, context.batch
    bodies = {cid: openai_body(settings, r) for cid, r in zip(ids, requests, strict=True)}
    hashes = {cid: _digest(body) for cid, body in bodies.items()}
    key = state_key(settings)
    records: list[dict[str, Any]] = list(context.state.get(key) or [])
    until = give_up_at(context)
    call = _Call(ids)
    async with BatchClient(
        base_url(settings), auth_headers(settings), timeout=settings.timeout_seconds,
        poll_seconds=policy.poll_seconds, poll_max_seconds=policy.poll_max_seconds, log=log,
    ) as client:  # fmt: skip
        for record in records:  # re-attach: batches an earlier run of this chunk paid for
            wanted = [c for c in call.rest() if record["rows"].get(c) == hashes[c]]
            if wanted:
                log.info(f"re-attaching to batch {record['batch']} for {len(wanted)} item(s)")
                await _follow(client, record["batch"], context, until, wanted, call)
        for _ in range(MAX_BATCHES_PER_CALL):
            rest = call.rest()
            if not rest or not _time_left(until):
                break
            try:
                status = await client.submit(
                    [request_line(c, bodies[c]) for c in rest], _metadata(context, key)
                )
            except SatelliteError as exc:  # nothing was created: the items retry
                call.results.update((c, exc) for c in rest)
                break
            records.append({"batch": status.id, "rows": {c: hashes[c] for c in rest}})
            context.state.put(key, records)  # before waiting: a killed step finds it
            call.created += 1
            smaller = " (what earlier batches left)" if len(rest) < len(ids) else ""
            log.info(f"submitted batch {status.id}: {len(rest)} prompt(s){smaller}, window 24h")
            await _follow(client, status.id, context, until, rest, call)
    from_batch = [call.results[c] for c in ids if isinstance(call.results.get(c), Generation)]
    rest = call.rest()
    if rest and _time_left(until):
        error = RetryableError(
            f"{MAX_BATCHES_PER_CALL} batches in a row ended without answering this item "
            "(see the step's log): the item's retry asks again in a new batch"
        )
        call.results.update((c, error) for c in rest)
        rest = []
    if rest:  # only the deadline sends items here
        log.warning(
            f"{len(rest)} item(s) answered synchronously, not by a batch: the run's deadline "
            f"({context.deadline.isoformat() if context.deadline else '-'}) leaves too little "
            f"time (the wait for batches ended at {until.isoformat() if until else '-'}, "
            f"reserve {policy.reserve_seconds:.0f}s)"
        )
        index = {c: i for i, c in enumerate(ids)}
        answers = await generate(settings, [requests[index[c]] for c in rest])
        call.results.update(zip(rest, answers, strict=True))
    _forget(context, key, records, call)
    _count(context, from_batch, call, len(rest))
    return [call.results[c] for c in ids]


def _time_left(until: datetime | None) -> bool:
    return until is None or datetime.now(UTC) < until


async def _follow(
    client: BatchClient,
    batch_id: str,
    context: SatelliteContext,
    until: datetime | None,
    wanted: list[str],
    call: _Call,
) -> None:
    """Wait for one batch and put its rows in ``call``. A batch still running at ``until`` is
    cancelled, and counts as ended only once the server says so. A batch that ended without
    answering some of ``wanted`` (expired, cancelled, failed) is abandoned: its answers are
    kept, the rest is left for a new batch. A batch whose fate is unknown keeps its items."""
    log = context.log
    stopped = False
    try:
        status = await client.wait(batch_id, until=until)
        if not status.terminal:
            log.warning(
                f"batch {batch_id} still {status.status} when the wait ended (the run's "
                "deadline minus the reserve): cancelling it"
            )
            status, stopped = await client.stop(batch_id), True
        found = await client.rows(status) if status.output_file_id or status.error_file_id else {}
    except BatchUnreachable as exc:
        log.warning(f"{exc}: its {len(wanted)} item(s) are asked nowhere else; they retry it")
        call.results.update((c, exc) for c in wanted)
        call.kept.update(wanted)
        return
    call.ended.add(batch_id)
    if status.status == "completed":
        for c in wanted:
            call.results[c] = found.get(c) or RetryableError(
                f"batch {batch_id} returned no row for this item"
            )
        return
    answered = {c: found[c] for c in wanted if c in found and not isinstance(found[c], RowNotRun)}
    call.results.update(answered)
    error = status.failure()
    if isinstance(error, FatalError):  # the server refused the file: no new batch helps
        call.results.update((c, error) for c in wanted if c not in answered)
    left = len(wanted) - len(answered)
    if not left:
        return
    call.abandoned[batch_id] = left
    why = "cancelled at the deadline" if stopped else f"ended {status.status} on the server"
    if isinstance(error, FatalError):
        then = "they fail: the server refused the batch's file"
    else:
        then = "they go into a new, smaller batch while the deadline allows"
    log.warning(
        f"batch {batch_id} abandoned, {why}: {len(answered)} of {len(wanted)} item(s) answered, "
        f"{left} not; {then} ({str(error)[:300]})"
    )


def _forget(
    context: SatelliteContext, key: str, records: list[dict[str, Any]], call: _Call
) -> None:
    """Drop what no later run of the chunk needs: the rows whose answers go back to the
    runtime now (a retry asks them again) and every batch that ended. The rows of a batch whose
    fate is unknown stay, so the retry follows it instead of paying again."""
    handed = set(call.ids) - call.kept
    kept = []
    for record in records:
        rows = {c: h for c, h in record["rows"].items() if c not in handed}
        if rows and record["batch"] not in call.ended:
            kept.append({**record, "rows": rows})
    if kept != records:
        context.state.put(key, kept)


def _count(
    context: SatelliteContext, answers: list[Generation], call: _Call, fallbacks: int
) -> None:
    """Step metadata: batch tokens, batches created, synchronous fallbacks, and each abandoned
    batch by name (``llm/abandoned_batch/<id>``: the items it left unanswered)."""
    metrics = context.metrics
    if metrics is None:
        return
    counts = {
        "llm/batch_prompt_tokens": float(sum(g.prompt_tokens for g in answers)),
        "llm/batch_completion_tokens": float(sum(g.completion_tokens for g in answers)),
        "llm/batches": float(call.created),
        "llm/sync_fallbacks": float(fallbacks),
        "llm/abandoned_batches": float(len(call.abandoned)),
        **{f"llm/abandoned_batch/{b}": float(n) for b, n in call.abandoned.items()},
    }
    for name, value in counts.items():
        metrics[name] = metrics.get(name, 0.0) + value


def _metadata(context: SatelliteContext, key: str) -> dict[str, str]:
    """Batch metadata (shown by the provider's console): where the batch comes from."""
    values = {
        "exosphere_cluster": context.cluster,
        "exosphere_satellite": context.satellite,
        "exosphere_run": context.run_id,
        "exosphere_state_key": key,
    }
    return {k: v[:512] for k, v in values.items() if v}


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]

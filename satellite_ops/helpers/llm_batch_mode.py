"""Batch mode of the LLM satellites: when a chunk's prompts go through the Batch API, how a
step finds its batch again, and when it gives up waiting.

* **When.** ``engine: openai`` and ``batch: always``, or ``batch: auto`` (the default) and the
  run's SLA tier is one the deployment allows (``EXOSPHERE_BATCH_TIERS``, default ``24h``).
  ``batch: never`` always calls synchronously.
* **Deadline.** A chunk waits for its batch until ``deadline - reserve``
  (``EXOSPHERE_BATCH_RESERVE_MINUTES``, default 60). Past that point it submits nothing, and a
  batch still running is cancelled: its answered rows are used, the rest is answered by
  synchronous calls, logged and counted (``llm/sync_fallbacks``).
* **Re-attach.** The batch id and each row's request hash are kept in the step's durable state
  (``context.state``, key ``llm-batch/<hash of the engine settings>``) before the step waits.
  Whoever runs the chunk next (a step retry, a re-execution, a new pod) finds the rows it
  needs there and follows the same batch; a batch that already ended is only downloaded.
  Rows are dropped from the state once their answers were handed to the runtime, so an item
  the runtime retries (an invalid answer, a failed row) goes out again, in a new and smaller
  batch when there is still time, synchronously when not.
* **Interruption.** A terminated run cancels the batch it waits for (``BatchClient.wait``);
  a killed process cannot, and its re-execution re-attaches instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from satellite_ops.context import SatelliteContext
from satellite_ops.errors import RetryableError
from satellite_ops.helpers.llm_batch import BatchClient, Outcome, request_line
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


def batch_wanted(mode: str, engine: str, context: SatelliteContext | None) -> bool:
    """Whether a chunk should go through the Batch API (before the deadline is looked at)."""
    if engine != "openai" or mode == "never":
        return False
    if mode == "always":
        return True
    return context is not None and context.sla in context.batch.tiers


def state_key(settings: EngineSettings) -> str:
    """The state key of one group of engine settings (the API key is not part of it)."""
    public = json.dumps(asdict(replace(settings, api_key=None)), sort_keys=True, default=str)
    return STATE_PREFIX + hashlib.sha256(public.encode()).hexdigest()[:16]


def give_up_at(context: SatelliteContext) -> datetime | None:
    """When the chunk stops waiting for a batch: the deadline minus the reserve."""
    if context.deadline is None:
        return None
    return context.deadline - timedelta(seconds=context.batch.reserve_seconds)


async def answer_through_batch(
    settings: EngineSettings,
    requests: list[GenerationRequest],
    ids: list[str],
    context: SatelliteContext,
) -> list[Outcome]:
    """Answer ``requests`` (``ids[i]`` is the i-th item's id) through the Batch API, falling
    back to synchronous calls for what the deadline leaves no time for."""
    log = context.log
    bodies = {cid: openai_body(settings, r) for cid, r in zip(ids, requests, strict=True)}
    hashes = {cid: _digest(body) for cid, body in bodies.items()}
    key = state_key(settings)
    records: list[dict[str, Any]] = list(context.state.get(key) or [])
    until = give_up_at(context)
    results: dict[str, Outcome] = {}
    created = 0
    async with BatchClient(
        base_url(settings), auth_headers(settings), timeout=settings.timeout_seconds
    ) as client:
        for record in records:  # re-attach: batches an earlier run of this chunk paid for
            wanted = [c for c in ids if c not in results and record["rows"].get(c) == hashes[c]]
            if wanted:
                log.info(f"re-attaching to batch {record['batch']} for {len(wanted)} item(s)")
                found = await _follow(client, record["batch"], context, until, set(wanted))
                results.update((c, found[c]) for c in wanted if c in found)
        rest = [c for c in ids if c not in results]
        if rest and (until is None or datetime.now(UTC) < until):
            lines = [request_line(c, bodies[c]) for c in rest]
            status = await client.submit(lines, _metadata(context, key))
            records.append({"batch": status.id, "rows": {c: hashes[c] for c in rest}})
            context.state.put(key, records)  # before waiting: a killed step finds it
            created += 1
            log.info(f"submitted batch {status.id}: {len(rest)} prompt(s), window 24h")
            found = await _follow(client, status.id, context, until, set(rest))
            results.update((c, found[c]) for c in rest if c in found)
    from_batch = [results[c] for c in ids if isinstance(results.get(c), Generation)]
    rest = [c for c in ids if c not in results]
    if rest:
        left = "no deadline" if until is None else f"the wait ended at {until.isoformat()}"
        log.warning(
            f"{len(rest)} item(s) answered synchronously, not by a batch: the run's deadline "
            f"({context.deadline.isoformat() if context.deadline else '-'}) leaves too little "
            f"time ({left}, reserve {context.batch.reserve_seconds:.0f}s)"
        )
        index = {c: i for i, c in enumerate(ids)}
        answers = await generate(settings, [requests[index[c]] for c in rest])
        results.update(zip(rest, answers, strict=True))
    _forget(context, key, records, set(ids))
    _count(context, from_batch, created, len(rest))
    return [results[c] for c in ids]


async def _follow(
    client: BatchClient,
    batch_id: str,
    context: SatelliteContext,
    until: datetime | None,
    wanted: set[str],
) -> dict[str, Outcome]:
    """Wait for one batch and map its rows. A batch past ``until`` is cancelled and only its
    answered rows count; a row missing from a completed batch is a retryable error; the rows
    of a batch that failed on the server all get its error."""
    policy = context.batch
    status = await client.wait(
        batch_id, until=until, poll_seconds=policy.poll_seconds,
        poll_max_seconds=policy.poll_max_seconds,
    )  # fmt: skip
    if status is None:
        context.log.warning(f"batch {batch_id} is unknown to the server: asking again")
        return {}
    if not status.terminal:
        context.log.warning(f"batch {batch_id} still {status.status} at the deadline: cancelled")
        status = await client.cancel(batch_id) or status
    found = await client.rows(status) if status.output_file_id or status.error_file_id else {}
    if status.status == "failed" and not found:
        error = status.failure()
        return {c: error for c in wanted}
    if status.status == "completed":
        for custom_id in wanted - set(found):
            found[custom_id] = RetryableError(f"batch {batch_id} returned no row for this item")
    return found


def _forget(
    context: SatelliteContext, key: str, records: list[dict[str, Any]], handed: set[str]
) -> None:
    """Drop the rows whose answers go back to the runtime now: a retry asks them again."""
    kept = []
    for record in records:
        rows = {c: h for c, h in record["rows"].items() if c not in handed}
        if rows:
            kept.append({**record, "rows": rows})
    if kept != records:
        context.state.put(key, kept)


def _count(
    context: SatelliteContext, answers: list[Generation], created: int, fallbacks: int
) -> None:
    metrics = context.metrics
    if metrics is None:
        return
    counts = {
        "llm/batch_prompt_tokens": float(sum(g.prompt_tokens for g in answers)),
        "llm/batch_completion_tokens": float(sum(g.completion_tokens for g in answers)),
        "llm/batches": float(created),
        "llm/sync_fallbacks": float(fallbacks),
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

"""Batch mode of the LLM satellites (``engine: openai``): when a chunk goes through the Batch
API, how it re-attaches after a retry, a kill or a re-execution, and what the deadline allows.

* **When.** ``batch: auto`` (default) uses the Batch API on the tiers in
  ``EXOSPHERE_BATCH_TIERS`` (comma-separated, default ``24h``); ``always`` on every tier;
  ``never`` not at all. In every mode a batch starts only if the run's deadline leaves it at
  least ``batch-min-wait-seconds`` before the last ``batch-reserve-seconds``; otherwise the
  prompts are answered synchronously at once (logged, counted in ``llm/sync_fallbacks``).
* **Waiting.** The chunk polls until the batch ends or until the deadline less the reserve
  (at most the 24h window); then it cancels the batch, keeps what the batch finished and
  answers the rest synchronously (counted too). An expired batch is treated the same way.
* **Re-attach.** Before creating a batch the step records ``{tag, rows: custom_id -> request
  digest}`` in its durable state, then the batch id once created (the batch carries the tag
  in its metadata, so a step killed between the two finds it with ``GET /v1/batches``). A
  retried, re-executed or moved step re-attaches to the newest live batch that holds the same
  request for an item, and only downloads it when it has already completed. A request that
  failed in a batch is never re-attached to: its retry is a new, smaller batch (same rules).
* **Interrupt.** When the step is interrupted (Dagster's ``DagsterExecutionInterruptedError``,
  ``KeyboardInterrupt``, cancellation) because the run is terminated (Dagster marks it
  CANCELING first: ``SatelliteContext.run_cancelled``), its live batches are cancelled and
  marked so. An interrupt of a run that goes on (a preempted pod: SIGTERM; Dagster retries
  the step) leaves the batch running for the retry to re-attach to; so does a SIGKILL, and
  a re-execution re-attaches.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from satellite_ops.context import MemoryState, StepState
from satellite_ops.errors import FatalError, RetryableError
from satellite_ops.http_client import safe_url
from satellite_ops.llm_batch import (
    TAG,
    TERMINAL,
    BatchApi,
    BatchPolicy,
    Sleep,
    failed_batch_errors,
    input_file,
    results,
    until_text,
    wait_for,
)
from satellite_ops.llm_engines import (
    EngineSettings,
    Generation,
    GenerationRequest,
    auth_headers,
    base_url,
    generate,
    openai_body,
)

BATCH_TIERS_ENV = "EXOSPHERE_BATCH_TIERS"
DEFAULT_BATCH_TIERS = "24h"
STATE_KEY = "llm/batches"
CANCEL_WAIT_SECONDS = 60.0  # how long a cancelled batch may take to hand back what it finished
Answer = Generation | BaseException


def batch_tiers() -> frozenset[str]:
    """The SLA tiers where ``batch: auto`` uses the Batch API (``EXOSPHERE_BATCH_TIERS``)."""
    raw = os.environ.get(BATCH_TIERS_ENV, DEFAULT_BATCH_TIERS)
    return frozenset(tier.strip() for tier in raw.split(",") if tier.strip())


def wants_batch(mode: str, engine: str, sla: str) -> bool:
    """Whether ``batch: mode`` sends a chunk of this tier to the Batch API (deadline aside)."""
    if engine != "openai" or mode == "never":
        return False
    return mode == "always" or sla in batch_tiers()


@dataclass
class BatchRun:
    """One group of prompts (same engine settings) of one step, answered by batch."""

    settings: EngineSettings
    policy: BatchPolicy
    log: logging.Logger | logging.LoggerAdapter
    metrics: dict[str, float]
    state: StepState
    deadline: datetime | None = None
    run_cancelled: Callable[[], bool] | None = None  # None: no run goes on after an interrupt
    sleep: Sleep = asyncio.sleep
    where: str = ""  # the server, without credentials: records of another server never match
    _ended: set[str] = field(default_factory=set)  # batches seen in a final state
    _records: list[dict[str, Any]] = field(default_factory=list)  # the state's batch records
    _source: dict[str, dict[str, Any]] = field(default_factory=dict)  # item -> its answer's batch
    _live: list[dict[str, Any]] = field(default_factory=list)  # batches this call waits for

    async def answer(self, requests: list[tuple[str, GenerationRequest]]) -> dict[str, Answer]:
        """Every request's answer or error by custom_id (the item id)."""
        now = datetime.now(UTC)
        if not self.policy.leaves_time(self.deadline, now):
            reason = (
                f"the deadline ({self.deadline:%Y-%m-%d %H:%M} UTC) leaves less than "
                f"{self.policy.reserve_seconds + self.policy.min_wait_seconds:.0f}s "
                "(batch-reserve-seconds + batch-min-wait-seconds)"
            )
            return await self._synchronously(requests, reason)
        bodies = {cid: openai_body(self.settings, request) for cid, request in requests}
        digests = {cid: _digest(body) for cid, body in bodies.items()}
        self.where = safe_url(base_url(self.settings))
        until = self.policy.wait_until(self.deadline, now)
        self._records = [dict(r) for r in self.state.get(STATE_KEY) or []]
        timeout = self.settings.timeout_seconds
        async with BatchApi(base_url(self.settings), auth_headers(self.settings), timeout) as api:
            try:
                groups = await self._attach(api, digests)
                fresh = [cid for cid in digests if not any(cid in ids for _, ids in groups)]
                if fresh:
                    groups.append((await self._submit(api, fresh, bodies, digests), fresh))
                    self.log.info(
                        f"waiting for the batch until {until:%Y-%m-%d %H:%M} UTC at most "
                        f"({until_text(until)}; then the rest is answered synchronously)"
                    )
                settled = await asyncio.gather(
                    *(self._settle(api, rec, ids, until) for rec, ids in groups)
                )
            except BaseException as exc:
                if not isinstance(exc, Exception):  # interrupted
                    await self._interrupted(api)
                raise
        answers: dict[str, Answer] = {}
        leftovers: list[str] = []
        for got, left in settled:
            answers.update(got)
            leftovers.extend(left)
        if leftovers:
            reason = f"their batch did not finish before the deadline reserve ({until:%H:%M} UTC)"
            request_of = dict(requests)
            answers.update(
                await self._synchronously([(c, request_of[c]) for c in leftovers], reason)
            )
        return answers

    # -- re-attach or create -----------------------------------------------------------------
    async def _attach(
        self, api: BatchApi, digests: dict[str, str]
    ) -> list[tuple[dict[str, Any], list[str]]]:
        """The live batches that already hold some of these requests, with their items."""
        found: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for cid, digest in digests.items():
            for rec in reversed(self._records):
                if (
                    rec["url"] == self.where
                    and not rec.get("dead")
                    and rec["rows"].get(cid) == digest
                    and cid not in rec.get("failed", ())
                ):
                    found.setdefault(rec["tag"], (rec, []))[1].append(cid)
                    break
        groups = []
        for rec, ids in found.values():
            batch = await self._recover(api, rec)
            if batch is not None:
                self.log.info(
                    f"re-attached to batch {batch['id']} ({batch.get('status')}) for "
                    f"{len(ids)} prompt(s): no new batch"
                )
                groups.append((rec, ids))
                self._live.append(rec)
        return groups

    async def _recover(self, api: BatchApi, rec: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded batch, when it can still answer; otherwise mark the record dead."""
        try:
            if rec.get("batch") is None:  # killed between upload and the state update
                batch = await api.find(rec["tag"], since=rec["created"] - 600)
                if batch is not None:
                    rec["batch"] = batch["id"]
                    self._save()
            else:
                batch = await api.get(rec["batch"])
        except FatalError as exc:  # e.g. 404: the server no longer knows it
            self.log.warning(f"recorded batch {rec.get('batch')} is gone ({exc}): new batch")
            batch = None
        if batch is None or batch.get("status") in ("cancelled", "expired", "failed"):
            rec["dead"] = True
            self._save()
            return None
        return batch

    async def _submit(
        self,
        api: BatchApi,
        ids: list[str],
        bodies: dict[str, dict[str, Any]],
        digests: dict[str, str],
    ) -> dict[str, Any]:
        tag = uuid.uuid4().hex
        data = input_file([(cid, bodies[cid]) for cid in ids])
        file_id = await api.upload(data, f"exosphere-{tag}.jsonl")
        rec = {
            "tag": tag,
            "url": self.where,
            "created": time.time(),
            "rows": {cid: digests[cid] for cid in ids},
            "file": file_id,
            "batch": None,
        }
        self._records.append(rec)
        self._save()  # before the batch exists: a kill right after create finds it
        batch = await api.create(file_id, {TAG: tag})
        rec["batch"] = str(batch["id"])
        self._live.append(rec)
        self._save()
        self._add("llm/batches", 1)
        self.log.info(f"created batch {rec['batch']} for {len(ids)} prompt(s) ({len(data)} bytes)")
        return rec

    # -- wait, collect, fall back --------------------------------------------------------------
    async def _settle(
        self,
        api: BatchApi,
        rec: dict[str, Any],
        ids: list[str],
        until: datetime,
    ) -> tuple[dict[str, Answer], list[str]]:
        """(answers, items left to answer synchronously) of one batch."""
        batch_id = rec["batch"]
        try:
            batch = await wait_for(
                api, batch_id, until, self.policy, log=self.log, sleep=self.sleep
            )
            if batch is not None and batch.get("status") in TERMINAL:
                self._ended.add(batch_id)
            if batch is None or batch.get("status") not in TERMINAL:
                self.log.warning(
                    f"batch {batch_id} is still {(batch or {}).get('status', 'unknown')} at the "
                    "deadline reserve: cancelling it, its unfinished prompts go synchronous"
                )
                batch = await self._cancel(api, rec)
            status = (batch or {}).get("status")
            if status == "failed":
                errors = failed_batch_errors(batch or {}, list(rec["rows"]))
                got: dict[str, Answer] = {cid: errors[cid] for cid in ids}
            else:
                found = await results(api, batch) if batch is not None else {}
                got = {cid: found[cid] for cid in ids if cid in found}
        except Exception as exc:  # noqa: BLE001 - the batch's failure is its items' failure
            return {cid: exc for cid in ids}, []
        missing = [cid for cid in ids if cid not in got]
        if status == "completed" or (status == "cancelled" and not rec.get("dead")):
            lost = f"batch {batch_id} ended {status} without an answer for this item"
            got.update({cid: RetryableError(lost) for cid in missing})
            missing = []
        for cid, answer in got.items():
            if isinstance(answer, Generation):
                self._source[cid] = rec
                self._add("llm/batch_prompt_tokens", answer.prompt_tokens)
                self._add("llm/batch_completion_tokens", answer.completion_tokens)
        failed = {cid for cid, answer in got.items() if not isinstance(answer, Generation)}
        if failed:
            rec["failed"] = sorted(set(rec.get("failed", ())) | failed)
            self._save()
        self.log.info(
            f"batch {batch_id} {status}: {len(got) - len(failed)} answered, {len(failed)} "
            f"failed, {len(missing)} left for synchronous calls"
        )
        return got, missing

    async def _cancel(self, api: BatchApi, rec: dict[str, Any]) -> dict[str, Any] | None:
        """Cancel a batch and wait (briefly) for it to hand back what it finished."""
        rec["dead"] = True
        self._save()
        try:
            await api.cancel(rec["batch"])
        except FatalError as exc:  # e.g. 409: it ended meanwhile; read what it has
            self.log.warning(f"batch {rec['batch']}: {exc}")
        wait = timedelta(seconds=min(CANCEL_WAIT_SECONDS, self.policy.poll_max_seconds))
        until = datetime.now(UTC) + wait
        return await wait_for(api, rec["batch"], until, self.policy, log=self.log, sleep=self.sleep)

    async def _interrupted(self, api: BatchApi) -> None:
        """Cancel the live batches if the run is being terminated; otherwise keep them for the
        step's retry (a preempted pod) to re-attach to."""
        live = [r for r in self._live if r.get("batch") and not r.get("dead")]
        live = [r for r in live if r["batch"] not in self._ended]
        try:
            ending = self.run_cancelled() if self.run_cancelled is not None else True
        except Exception as exc:  # noqa: BLE001 - cannot tell: keep the batches (re-attachable)
            self.log.warning(f"could not read the run's status ({exc}); keeping the batches")
            ending = False
        if not ending:
            for rec in live:
                self.log.warning(
                    f"step interrupted while batch {rec['batch']} runs; the run goes on, so "
                    "the batch is kept for the step's retry to re-attach to"
                )
            return
        for rec in live:
            rec["dead"] = True
            try:
                self._save()
                async with asyncio.timeout(15):
                    await api.cancel(rec["batch"])
                self.log.warning(f"cancelled batch {rec['batch']}: the run is being terminated")
            except Exception as exc:  # noqa: BLE001 - best effort while the step stops
                self.log.warning(f"could not cancel batch {rec['batch']}: {exc}")

    def reject(self, custom_ids: list[str]) -> None:
        """Answers the satellite refused (not JSON, not the schema): never re-attach to them, so
        that their retry asks the model again (a new batch) instead of downloading them."""
        changed = False
        for cid in custom_ids:
            if (rec := self._source.pop(cid, None)) is not None:
                rec["failed"] = sorted({*rec.get("failed", ()), cid})
                changed = True
        if changed:
            self._save()

    async def _synchronously(
        self, requests: list[tuple[str, GenerationRequest]], reason: str
    ) -> dict[str, Answer]:
        self.log.warning(f"{len(requests)} prompt(s) answered synchronously: {reason}")
        self._add("llm/sync_fallbacks", len(requests))
        try:
            raw = await generate(self.settings, [request for _, request in requests])
        except Exception as exc:  # noqa: BLE001 - the engine failed: every prompt gets it
            raw = [exc] * len(requests)
        return {cid: answer for (cid, _), answer in zip(requests, raw, strict=True)}

    def _save(self) -> None:
        self.state.put(STATE_KEY, self._records)

    def _add(self, key: str, value: float) -> None:
        self.metrics[key] = self.metrics.get(key, 0.0) + float(value)


def batch_run(
    settings: EngineSettings,
    policy: BatchPolicy,
    context: Any,
    log: logging.Logger | logging.LoggerAdapter,
) -> BatchRun:
    """A :class:`BatchRun` with what the step's context offers (state, deadline, metrics)."""
    metrics = getattr(context, "metrics", None)
    return BatchRun(
        settings=settings,
        policy=policy,
        log=log,
        metrics=metrics if metrics is not None else {},
        state=getattr(context, "state", None) or MemoryState(),
        deadline=getattr(context, "deadline", None),
        run_cancelled=getattr(context, "run_cancelled", None),
    )


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]

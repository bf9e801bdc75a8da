"""Log forwarding: the cluster's structured log records go to its ``logs.satellites`` in batches.

Every message a step logs (the runtime's own and the satellites') goes to Dagster's log as usual
and, as a structured record, to a buffer that is flushed to each log sink when it fills up and
when the step ends. A broken sink is reported as a warning and never fails the run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exosphere_dagster.runtime.secrets import redact, resolve_secrets
from satellite_ops.context import SatelliteContext
from satellite_ops.registry import SatelliteDefinition
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.templates import render_value
from yaml_loader.templates.scope import log_scope

logger = logging.getLogger("exosphere.logs")


@dataclass
class LogForwarder:
    """Buffers records for one step and sends them to the cluster's log satellites."""

    plan: ClusterPlan
    sinks: list[tuple[SatelliteNode, SatelliteDefinition]]
    run_id: str
    base_scope: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 500
    records: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0

    def emit(self, level: str, satellite: str | None, item_id: str | None, message: str) -> None:
        if not self.sinks:
            return
        self.records.append(
            {
                "timestamp": time.time(),
                "level": level,
                "cluster": self.plan.identifier,
                "run_id": self.run_id,
                "satellite": satellite,
                "item_id": redact(item_id) if item_id else item_id,  # named after its object
                "message": redact(message),
            }
        )
        if len(self.records) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        batch, self.records = self.records, []
        if not batch:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._deliver(batch)
            return
        # Called from an async satellite's event loop: sinks may block or run their own loop,
        # so deliver from a worker thread (the loop waits, as it would for a blocking call).
        worker = threading.Thread(target=self._deliver, args=(batch,), name="exosphere-log-sink")
        worker.start()
        worker.join()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        for node, definition in self.sinks:
            try:
                _send(node, definition, self.plan, self.base_scope, batch, self.run_id)
            except Exception as exc:  # noqa: BLE001 - a log sink never fails the run
                self.failures += 1
                logger.warning(
                    "log sink %s failed (%d records dropped): %s",
                    node.id,
                    len(batch),
                    redact(f"{type(exc).__name__}: {exc}"),
                )


def _send(
    node: SatelliteNode,
    definition: SatelliteDefinition,
    plan: ClusterPlan,
    base_scope: Mapping[str, Any],
    records: list[dict[str, Any]],
    run_id: str,
) -> None:
    secrets = resolve_secrets(plan.secrets, node.secrets)
    scope = log_scope(base_scope, secrets)
    config = definition.config_model.model_validate(render_value(node.config, scope))
    if definition.log_sink is not None:
        definition.log_sink(config, records)
        return
    payload = {"records": records}  # a bring-your-own sink gets the batch as its input
    kwargs: dict[str, Any] = {}
    if definition.accepts_context:  # a batch of records is no item: no item id, no lineage
        kwargs["context"] = SatelliteContext(
            log=logger,
            item_id="",
            secrets=secrets,
            run_id=run_id,
            cluster=plan.identifier,
            satellite=node.id,
        )
    result = definition.fn(config, payload, **kwargs)
    if asyncio.iscoroutine(result):
        asyncio.run(result)


class StepLog:
    """What satellites and the runtime log to: Dagster's log plus the forwarder, per item."""

    def __init__(
        self,
        dagster_log: Any,
        forwarder: LogForwarder | None,
        satellite: str | None,
        item_id: str | None = None,
    ) -> None:
        self._log = dagster_log
        self._forwarder = forwarder
        self.satellite = satellite
        self.item_id = item_id

    def for_item(self, item_id: str) -> StepLog:
        return StepLog(self._log, self._forwarder, self.satellite, item_id)

    def _emit(self, level: str, msg: object, args: tuple[Any, ...]) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):  # as logging does, a bad format never fails the caller
            text = f"{msg} (log arguments that did not fit the format: {args!r})"
        if self.item_id:
            text = f"[item {self.item_id}] {text}"
        text = redact(text)  # the item id too: it is named after a field of the item's object
        getattr(self._log, level)(text)
        if self._forwarder is not None:
            self._forwarder.emit(level, self.satellite, self.item_id, text)

    def debug(self, msg: object, *args: Any) -> None:
        self._emit("debug", msg, args)

    def info(self, msg: object, *args: Any) -> None:
        self._emit("info", msg, args)

    def warning(self, msg: object, *args: Any) -> None:
        self._emit("warning", msg, args)

    def error(self, msg: object, *args: Any) -> None:
        self._emit("error", msg, args)

    def exception(self, msg: object, *args: Any) -> None:
        self._emit("error", msg, args)

    warn = warning

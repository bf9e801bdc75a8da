"""Log forwarding: the cluster's structured log records go to its ``logs.satellites`` in batches.

Every message a step logs (the runtime's own and the satellites') goes to Dagster's log as usual
and, as a structured record, to each log sink's bounded queue (``runtime/log_delivery.py``): a
sender thread per sink sends full batches while the step works, retried with the sink's
``retries`` and ``delay``; at the end of the step what is left is sent, waiting at most the
deployment's drain time (``EXOSPHERE_LOG_SINK_DRAIN_SECONDS``; queue size and drain time reach
here from the :class:`Deployment`, never from the environment). A slow or broken sink never fails
or holds up the run: what it does not take is dropped, counted, and reported in the step's log.

A line logged for one item starts with :func:`item_prefix`; :func:`split_item_prefix` is its
inverse, for readers of the event log (the cluster API).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exosphere_dagster.runtime.log_delivery import SinkStats, SinkWorker
from exosphere_dagster.runtime.secrets import redact, resolve_secrets
from satellite_ops.context import SatelliteContext
from satellite_ops.registry import SatelliteDefinition
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.templates import render_value
from yaml_loader.templates.scope import log_scope

if TYPE_CHECKING:
    from exosphere_dagster.resolve.deployment import Deployment

logger = logging.getLogger("exosphere.logs")


@dataclass
class LogForwarder:
    """Queues one step's records for the cluster's log satellites, each with its own sender.

    ``report`` (the step's Dagster log; the first :class:`StepLog` sets it) gets one warning
    per sink that dropped records. ``queue_size`` and ``drain_seconds`` are the deployment's
    (:meth:`for_step`)."""

    plan: ClusterPlan
    sinks: list[tuple[SatelliteNode, SatelliteDefinition]]
    run_id: str
    queue_size: int  # records queued per sink; more are dropped, counted
    drain_seconds: float  # the longest the step's end waits for its sinks
    base_scope: Mapping[str, Any] = field(default_factory=dict)
    records_per_send: int = 500
    report: Any = None
    workers: list[SinkWorker] = field(init=False)

    @classmethod
    def for_step(
        cls,
        plan: ClusterPlan,
        sinks: list[tuple[SatelliteNode, SatelliteDefinition]],
        run_id: str,
        deployment: Deployment,
        base_scope: Mapping[str, Any] | None = None,
    ) -> LogForwarder:
        """A step's forwarder, sized as the deployment says."""
        return cls(
            plan,
            sinks,
            run_id,
            queue_size=deployment.settings.log_sink_queue,
            drain_seconds=deployment.settings.log_sink_drain_seconds,
            base_scope=base_scope or {},
        )

    def __post_init__(self) -> None:
        self.workers = [
            SinkWorker(
                node.id,
                _sender(node, definition, self.plan, self.base_scope, self.run_id),
                node.retry,
                records_per_send=self.records_per_send,
                capacity=self.queue_size,
            )
            for node, definition in self.sinks
        ]

    @property
    def stats(self) -> list[SinkStats]:
        return [worker.stats for worker in self.workers]

    @property
    def failures(self) -> int:
        """Sinks that dropped records."""
        return sum(1 for s in self.stats if s.dropped)

    def emit(self, level: str, satellite: str | None, item_id: str | None, message: str) -> None:
        if not self.workers:
            return
        record = {
            "timestamp": time.time(),
            "level": level,
            "cluster": self.plan.identifier,
            "run_id": self.run_id,
            "satellite": satellite,
            "item_id": redact(item_id) if item_id else item_id,  # named after its object
            "message": redact(message),
        }
        for worker in self.workers:
            worker.put(record)

    def flush(self) -> list[SinkStats]:
        """Send what is queued (every sink at once, within the drain time) and report drops."""
        drain = float(self.drain_seconds)
        threads = [
            threading.Thread(target=w.drain, args=(drain,), name=f"exosphere-drain-{w.name}")
            for w in self.workers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for stats in self.stats:
            if stats.dropped and self.report is not None:
                self.report.warning(stats.summary())
        return self.stats

    close = flush


def _sender(
    node: SatelliteNode,
    definition: SatelliteDefinition,
    plan: ClusterPlan,
    base_scope: Mapping[str, Any],
    run_id: str,
) -> Callable[[list[dict[str, Any]]], None]:
    """Sends one batch to one sink: config rendered (secrets resolved) once, on first use."""
    rendered: list[tuple[Any, dict[str, str]]] = []

    def send(records: list[dict[str, Any]]) -> None:
        if not rendered:
            secrets = resolve_secrets(plan.secrets, node.secrets)
            scope = log_scope(base_scope, secrets)
            config = definition.config_model.model_validate(render_value(node.config, scope))
            rendered.append((config, secrets))
        config, secrets = rendered[0]
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

    return send


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
        if forwarder is not None and forwarder.report is None:
            forwarder.report = dagster_log  # drops are reported in the step's own log
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
            text = item_prefix(self.item_id) + text
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


def item_prefix(item_id: str) -> str:
    """The start of a line logged for one item: ``[item <id>] ``."""
    return f"[item {item_id}] "


def split_item_prefix(message: str) -> tuple[str | None, str]:
    """(item id, the rest) of a line :class:`StepLog` logged for an item; (None, message) for
    any other line. Item ids hold no space and no ``]`` (``runtime/items.child_id``)."""
    if not message.startswith("[item "):
        return None, message
    item_id, found, rest = message[len("[item ") :].partition("] ")
    if not found or not item_id or " " in item_id or "]" in item_id:
        return None, message
    return item_id, rest

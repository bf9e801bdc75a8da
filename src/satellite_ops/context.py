"""What a satellite may know about the item it processes, beyond its config and input."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@runtime_checkable
class PayloadStore(Protocol):
    """Where large payloads go instead of the event log (filesystem locally, S3 deployed)."""

    def put_bytes(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` and return a URI that :meth:`get_bytes` understands."""
        ...

    def get_bytes(self, uri: str) -> bytes:
        """Read back what :meth:`put_bytes` stored."""
        ...


@runtime_checkable
class StepState(Protocol):
    """A small durable key/value store of one step (one satellite over one chunk).

    What a satellite puts here survives a step retry, a re-execution of the run (its scope is
    the root run) and a new pod: the runtime keeps it beside the chunk's checkpoints. Values are
    small, picklable and never secret (an LLM batch's id, not its API key). ``put`` returns once
    the value is durable.
    """

    def get(self, key: str, default: Any = None) -> Any: ...

    def put(self, key: str, value: Any) -> None: ...


class MemoryState:
    """A :class:`StepState` that lives as long as the object (tests, calls outside a run)."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def put(self, key: str, value: Any) -> None:
        self.values[key] = value


@dataclass(frozen=True)
class SatelliteContext:
    """Per-item runtime facts, passed to satellites that declare a ``context`` parameter.

    ``lineage`` maps each ancestor satellite's identifier to the object it produced on this
    item's path; ``secrets`` holds only the secrets this satellite's templates name.
    """

    log: logging.Logger | logging.LoggerAdapter
    item_id: str
    lineage: Mapping[str, dict] = field(default_factory=lambda: _EMPTY)
    secrets: Mapping[str, str] = field(default_factory=lambda: _EMPTY, repr=False)
    run_id: str = ""
    cluster: str = ""
    satellite: str = ""
    attempt: int = 1
    store: PayloadStore | None = None
    metrics: dict[str, float] | None = field(default=None, repr=False, compare=False)
    """Shared by the items of one step; numbers added here become step metadata (tokens...)."""
    deadline: datetime | None = None
    """When the run must be done (trigger time + SLA, aware UTC), or None outside a run."""
    sla: str = ""
    """The cluster's SLA tier (``6h``, ``12h``, ``24h``); empty outside a run."""
    state: StepState | None = field(default=None, repr=False, compare=False)
    """Durable per-step key/value store, shared by the items of one step (see StepState)."""
    run_cancelled: Callable[[], bool] | None = field(default=None, repr=False, compare=False)
    """Whether the run is being terminated (not just this step interrupted, as when its pod is
    preempted and Dagster retries it); None outside a run. For an interrupted satellite to
    decide between cancelling paid work and leaving it for the step's retry."""


@dataclass(frozen=True)
class BatchItem:
    """One item handed to a ``batched`` satellite: its resolved config, input and context."""

    config: Any
    input: Mapping[str, Any]
    context: SatelliteContext | None = None

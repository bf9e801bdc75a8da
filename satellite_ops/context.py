"""What a satellite may know about the item it processes, beyond its config and input."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@runtime_checkable
class StepState(Protocol):
    """A small durable key/value store of one step (one satellite over one chunk).

    What a satellite puts here survives a step retry, a re-execution of the run (keyed by the
    root run) and a new pod: the LLM satellites keep the id of a provider batch here, so that
    whoever runs the chunk next re-attaches to the batch instead of paying for it again. Values
    are small picklable objects (ids, not payloads); never put a secret here.
    """

    def get(self, key: str, default: Any = None) -> Any:
        """The value last put under ``key``, or ``default``."""
        ...

    def put(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key``; durable when this returns."""
        ...


class MemoryState:
    """A :class:`StepState` that lives as long as the object (a satellite called outside a
    run, in a unit test or a notebook): nothing survives the process."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._values.get(key, default)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._values[key] = value


@dataclass(frozen=True)
class BatchPolicy:
    """When a satellite may send work through a provider's Batch API (half the price, answers
    within a completion window instead of seconds). A step gets the deployment's
    (``EXOSPHERE_BATCH_*``, docs/sla.md, resolved once); outside a run no tier allows
    ``batch: auto`` (the deployment's default tiers live in its settings only)."""

    tiers: frozenset[str] = frozenset()  # SLA tiers loose enough to wait for a batch
    reserve_seconds: float = 3600.0  # stop waiting this long before the run's deadline
    poll_seconds: float = 5.0  # first wait between two looks at a batch
    poll_max_seconds: float = 300.0  # the wait grows (x1.5) up to this


@dataclass(frozen=True)
class SatelliteContext:
    """Per-item runtime facts, passed to satellites that declare a ``context`` parameter.

    ``lineage`` maps each ancestor satellite's identifier to the object it produced on this
    item's path; ``secrets`` holds only the secrets this satellite's templates name.
    ``deadline`` (aware UTC) is when the run must be done (trigger time + SLA), ``sla`` the
    tier's name; ``state`` is the step's durable key/value store, shared by its items.
    """

    log: logging.Logger | logging.LoggerAdapter
    item_id: str
    lineage: Mapping[str, dict] = field(default_factory=lambda: _EMPTY)
    secrets: Mapping[str, str] = field(default_factory=lambda: _EMPTY, repr=False)
    run_id: str = ""
    cluster: str = ""
    satellite: str = ""
    attempt: int = 1
    metrics: dict[str, float] | None = field(default=None, repr=False, compare=False)
    """Shared by the items of one step; numbers added here become step metadata (tokens...)."""
    deadline: datetime | None = None
    sla: str = ""
    state: StepState = field(default_factory=MemoryState, repr=False, compare=False)
    batch: BatchPolicy = field(default_factory=BatchPolicy, repr=False)


@dataclass(frozen=True)
class BatchItem:
    """One item handed to a ``batched`` satellite: its resolved config, input and context."""

    config: Any
    input: Mapping[str, Any]
    context: SatelliteContext | None = None

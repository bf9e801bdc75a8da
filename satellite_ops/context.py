"""What a satellite may know about the item it processes, beyond its config and input."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class BatchItem:
    """One item handed to a ``batched`` satellite: its resolved config, input and context."""

    config: Any
    input: Mapping[str, Any]
    context: SatelliteContext | None = None

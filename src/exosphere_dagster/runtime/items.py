"""Items: the objects satellites emit, each carrying its lineage and a stable id."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def child_id(parent_id: str, satellite: str, index: int) -> str:
    """Stable id of the ``index``-th object ``satellite`` produced for item ``parent_id``.

    Deterministic across re-executions, so checkpoints recognise work already done.
    """
    return hashlib.sha256(f"{parent_id}/{satellite}/{index}".encode()).hexdigest()[:20]


@dataclass
class Item:
    id: str
    value: Any  # the object this item is: the producing satellite's output (or the run's seed)
    lineage: dict[str, Any]  # satellite id -> the object it produced on this item's path
    seed: Any = None  # the run input this item descends from (``run.input``)
    failure: dict[str, Any] | None = None  # set on items travelling the failure branch

    def child(self, satellite: str, index: int, obj: Any) -> Item:
        return Item(
            id=child_id(self.id, satellite, index),
            value=obj,
            lineage={**self.lineage, satellite: obj},
            seed=self.seed,
            failure=self.failure,
        )


def seed_items(inputs: list[Any]) -> list[Item]:
    """The run's inputs (from the trigger or the launch call) as root items."""
    return [
        Item(id=child_id("run", "input", i), value=v, lineage={}, seed=v)
        for i, v in enumerate(inputs)
    ]


@dataclass
class FailedItem:
    item: Item
    satellite: str
    error: str  # already redacted
    error_type: str
    attempts: int

    def to_failure_item(self) -> Item:
        """The item as the failure branch sees it: same lineage, plus ``failure.*``."""
        info = {
            "error": self.error,
            "error_type": self.error_type,
            "satellite": self.satellite,
            "attempts": self.attempts,
            "item_id": self.item.id,
        }
        return Item(
            id=child_id(self.item.id, "failure", 0),
            value=self.item.value,
            lineage=dict(self.item.lineage),
            seed=self.item.seed,
            failure=info,
        )


@dataclass
class ChunkReport:
    """What one step did with its chunk; the summary step adds these up."""

    satellite: str
    chunk: str = ""  # the mapping key of the step that produced this report
    items_in: int = 0
    succeeded: int = 0
    ended: int = 0  # items for which the satellite returned no objects: their path ends here
    outputs: int = 0
    resumed: int = 0  # items taken from a checkpoint instead of being run again
    attempts: int = 0
    failed: list[FailedItem] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def build_scope(item: Item, base: Mapping[str, Any]) -> dict[str, Any]:
    """The template scope for one item: ``satellites.X.output`` from its lineage, and more."""
    run = dict(base.get("run", {}))
    run["input"] = item.seed
    return {
        "cluster": base.get("cluster", {}),
        "secrets": base.get("secrets", {}),
        "run": run,
        "satellites": {sid: {"output": obj} for sid, obj in item.lineage.items()},
        "failure": item.failure or {},
    }

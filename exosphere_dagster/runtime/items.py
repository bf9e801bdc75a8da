"""Items: the objects satellites emit, each carrying its lineage and a stable id."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exosphere_dagster.runtime.secrets import redact
from yaml_loader.templates.scope import failure_values, item_scope

NAME_FIELDS = (
    "key",
    "file-path",
    "file_path",
    "path",
    "file",
    "filename",
    "name",
    "id",
    "title",
    "label",
    "url",
)  # fields whose value names an object, most telling first
MAX_LABEL = 60


def child_id(parent_id: str, satellite: str, index: int, obj: Any = None) -> str:
    """Stable, readable id of the ``index``-th object ``satellite`` produced for ``parent_id``.

    ``<label>~<hash>``: the label is the object's own name (its file name or key, when it has
    one) or its parent's label plus the index, so a person can find the item; the hash of the
    path keeps ids unique and deterministic across re-executions (checkpoints rely on it).
    """
    digest = hashlib.sha256(f"{parent_id}/{satellite}/{index}".encode()).hexdigest()[:12]
    parent_label = parent_id.rpartition("~")[0]
    label = _name_of(obj) or (f"{parent_label}.{index}" if parent_label else f"{satellite}.{index}")
    return f"{label[-MAX_LABEL:]}~{digest}"


def _name_of(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    for field_name in NAME_FIELDS:
        value = obj.get(field_name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            if redact(str(value)) != str(value):
                return None  # a name holding a secret never becomes part of an id
            tail = str(value).rstrip("/").rsplit("/", 1)[-1]
            clean = re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip("-")
            if clean:
                return clean
    return None


@dataclass
class Item:
    id: str
    value: Any  # the object this item is: the producing satellite's output (or the run's seed)
    lineage: dict[str, Any]  # satellite id -> the object it produced on this item's path
    seed: Any = None  # the run input this item descends from (``run.input``)
    failure: dict[str, Any] | None = None  # set on items travelling the failure branch

    def child(self, satellite: str, index: int, obj: Any) -> Item:
        return Item(
            id=child_id(self.id, satellite, index, obj),
            value=obj,
            lineage={**self.lineage, satellite: obj},
            seed=self.seed,
            failure=self.failure,
        )


def seed_items(inputs: list[Any]) -> list[Item]:
    """The run's inputs (from the trigger or the launch call) as root items."""
    return [
        Item(id=child_id("run", "input", i, v), value=v, lineage={}, seed=v)
        for i, v in enumerate(inputs)
    ]


@dataclass
class Chunk:
    """The items one mapped step works on; ``key`` is the mapping key it travels under."""

    key: str
    items: list[Item]


@dataclass
class FailedItem:
    item: Item
    satellite: str
    error: str  # already redacted
    error_type: str
    attempts: int

    def to_failure_item(self) -> Item:
        """The item as the failure branch sees it: same lineage, plus ``failure.*``."""
        info = failure_values(
            error=self.error,
            satellite=self.satellite,
            attempts=self.attempts,
            item_id=self.item.id,
            error_type=self.error_type,
        )
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
    run_id: str = ""  # the run whose step spent ``metrics`` (a re-execution counts only its own)
    cost_problems: list[str] = field(default_factory=list)  # what the step's cost could not price


def build_scope(item: Item, base: Mapping[str, Any]) -> dict[str, Any]:
    """The template scope for one item: ``satellites.X.output`` from its lineage, and more."""
    return item_scope(base, seed=item.seed, lineage=item.lineage, failure=item.failure)

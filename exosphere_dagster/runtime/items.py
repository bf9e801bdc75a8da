"""Items: the objects satellites emit, each carrying its lineage and a stable id; and what
happened to them, as structured :class:`ItemEvent` records.

Item events (the data the cluster API reads; no log line is ever parsed back):

- the runtime adds to ``ChunkReport.events``, in order, one ``retry`` event per failed attempt
  that another attempt follows and one ``attempt-failed`` event for an item's last failed
  attempt (``runtime/execute.py``); the step that decides where a failed item goes adds
  ``routed`` (the failure branch takes it) or ``failed`` (nothing does), with
  :meth:`ChunkReport.add_verdicts`;
- the step writes them as the JSON metadata entry ``item_events`` of its ``report`` output:
  ``{"events": [ItemEvent.as_dict(), ...], "more": <events left out>}``
  (:meth:`ChunkReport.events_metadata`, at most ``MAX_EVENTS`` listed); a reader rebuilds each with
  :meth:`ItemEvent.from_dict`. One event as a dict::

      {"item": "a.pdf~1f2e3d4c5b6a", "satellite": "parse", "outcome": "retry",
       "attempt": 1, "attempts": 6, "error": "RetryableError: 503", "timestamp": 1765000000.5}

  ``attempts`` is the most an item may take (retries + 1); ``error`` is already redacted.
- lines logged for one item carry the prefix :func:`runtime.logs.item_prefix` (split again
  with :func:`runtime.logs.split_item_prefix`, never a regex of the reader's own).
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from exosphere_dagster.runtime.secret_forms import forms_pattern
from exosphere_dagster.runtime.secrets import MIN_LENGTH
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
_NOT_IN_LABEL = re.compile(r"[^A-Za-z0-9._-]+")  # replaced by "-" in a label


def child_id(
    parent_id: str, satellite: str, index: int, obj: Any = None, secrets: Iterable[str] = ()
) -> str:
    """Stable, readable id of the ``index``-th object ``satellite`` produced for ``parent_id``.

    ``<label>~<hash>``: the label is the object's own name (its file name or key, when it has
    one) or its parent's label plus the index, so a person can find the item; the hash of the
    path keeps ids unique and deterministic across re-executions (checkpoints rely on it).
    A name holding one of ``secrets`` (the run's secret values, passed by the caller: never
    what else this process happens to have resolved) is not used as the label.
    """
    digest = hashlib.sha256(f"{parent_id}/{satellite}/{index}".encode()).hexdigest()[:12]
    parent_label = parent_id.rpartition("~")[0]
    label = _name_of(obj, secrets) or (
        f"{parent_label}.{index}" if parent_label else f"{satellite}.{index}"
    )
    return f"{label[-MAX_LABEL:]}~{digest}"


def _name_of(obj: Any, secrets: Iterable[str]) -> str | None:
    if not isinstance(obj, dict):
        return None
    secrets = secrets if isinstance(secrets, tuple) else tuple(secrets)
    for field_name in NAME_FIELDS:
        value = obj.get(field_name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            text = str(value)
            pattern = _secrets_pattern(secrets)
            if pattern is not None and pattern.search(text):
                return None  # a name holding a secret never becomes part of an id
            tail = text.rstrip("/").rsplit("/", 1)[-1]
            clean = _NOT_IN_LABEL.sub("-", tail).strip("-")
            if clean:
                return clean
    return None


@functools.lru_cache(maxsize=64)
def _secrets_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """The pattern of the secrets long enough to redact: one per run's secrets, not per id."""
    return forms_pattern(frozenset(v for v in secrets if len(v) >= MIN_LENGTH))


@dataclass(slots=True)
class Item:
    id: str
    value: Any  # the object this item is: the producing satellite's output (or the run's seed)
    lineage: dict[str, Any]  # satellite id -> the object it produced on this item's path
    seed: Any = None  # the run input this item descends from (``run.input``)
    failure: dict[str, Any] | None = None  # set on items travelling the failure branch

    def __setstate__(self, state: Any) -> None:
        """Also the state of an item pickled before Item had slots (a dict of its fields): a
        re-execution after an upgrade reads the parent run's chunks and manifests."""
        if isinstance(state, tuple):  # (None, slots) as slotted objects pickle
            state = {**(state[0] or {}), **(state[1] or {})}
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def child(self, satellite: str, index: int, obj: Any, secrets: Iterable[str] = ()) -> Item:
        """The ``index``-th object ``satellite`` produced for this item (``secrets``: the
        run's secret values, see :func:`child_id`)."""
        return Item(
            id=child_id(self.id, satellite, index, obj, secrets),
            value=obj,
            lineage={**self.lineage, satellite: obj},
            seed=self.seed,
            failure=self.failure,
        )


def seed_items(inputs: list[Any], secrets: Iterable[str] = ()) -> list[Item]:
    """The run's inputs (from the trigger or the launch call) as root items; ``secrets``: the
    run's secret values (:func:`runtime.secrets.redaction_values` of the plan's secrets)."""
    return [
        Item(id=child_id("run", "input", i, v, secrets), value=v, lineage={}, seed=v)
        for i, v in enumerate(inputs)
    ]


PICKLE_BATCH = 10_000  # items per pickle (pack)


def pack(items: list[Item]) -> tuple[bytes, ...]:
    """``items`` as pickles of ``PICKLE_BATCH`` items each: pickle keeps every object it wrote
    in its memo until the end, so one pickle of a million items held about 250 MB more than the
    items themselves (bench/large_run.py's generator step; its reader likewise)."""
    return tuple(
        pickle.dumps(items[i : i + PICKLE_BATCH], protocol=pickle.HIGHEST_PROTOCOL)
        for i in range(0, len(items), PICKLE_BATCH)
    )


def unpack(batches: Iterable[bytes]) -> list[Item]:
    items: list[Item] = []
    for batch in batches:
        items.extend(pickle.loads(batch))
    return items


@dataclass
class Chunk:
    """The items one mapped step works on; ``key`` is the mapping key it travels under.

    Pickled as ``pack(items)``; ``packed``, when given, is that already made (the chunk's entry
    in its segment's manifest), so the items are pickled once for both."""

    key: str
    items: list[Item]
    packed: tuple[bytes, ...] | None = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, tuple[str, tuple[bytes, ...]]]:
        packed = self.packed if self.packed is not None else pack(self.items)
        return _unpickled_chunk, (self.key, packed)


def _unpickled_chunk(key: str, batches: Iterable[bytes]) -> Chunk:
    return Chunk(key, unpack(batches))


@dataclass(frozen=True)
class PackedItems:
    """A chunk's items, pickled (``pack``), read only when needed: a segment's manifest (which
    items went into which chunk) holds one per chunk, and the steps that receive it (the
    gathering steps, the summary) unpickle only the chunks whose steps never ran. With a million
    items, unpickling every chunk cost the summary more than the rest of its work."""

    data: tuple[bytes, ...] | bytes  # bytes: one pickle, as manifests were written before pack
    count: int

    @classmethod
    def of(cls, items: list[Item]) -> PackedItems:
        return cls(pack(items), len(items))

    def unpack(self) -> list[Item]:
        if isinstance(self.data, bytes):
            return pickle.loads(self.data)
        return unpack(self.data)

    def __len__(self) -> int:
        return self.count


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

    def verdict(self, routed: bool) -> ItemEvent:
        """Where the item went after its last attempt: the failure branch, or nowhere."""
        return ItemEvent(
            self.item.id,
            self.satellite,
            "routed" if routed else "failed",
            self.attempts,
            self.attempts,
            self.error,
        )


Outcome = Literal["retry", "attempt-failed", "routed", "failed"]
MAX_EVENTS = 200  # item events listed in one step's metadata


@dataclass(frozen=True)
class ItemEvent:
    """One thing that happened to one item in a step (shape: the module docstring)."""

    item: str
    satellite: str
    outcome: Outcome
    attempt: int  # the attempt this is about (1-based)
    attempts: int  # the most attempts the item may take: retries + 1
    error: str | None = None  # redacted
    timestamp: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemEvent:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


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
    events: list[ItemEvent] = field(default_factory=list)  # in order (the module docstring)

    def add_verdicts(self, routed: bool) -> None:
        """Record where each failed item went (``routed``: the failure branch takes them)."""
        self.events.extend(f.verdict(routed) for f in self.failed)

    def events_metadata(self, limit: int = MAX_EVENTS) -> dict[str, Any]:
        """The step's ``item_events`` metadata value: the first ``limit`` events, as JSON."""
        listed = [e.as_dict() for e in self.events[:limit]]
        return {"events": listed, "more": max(0, len(self.events) - limit)}


def build_scope(item: Item, base: Mapping[str, Any]) -> dict[str, Any]:
    """The template scope for one item: ``satellites.X.output`` from its lineage, and more."""
    return item_scope(base, seed=item.seed, lineage=item.lineage, failure=item.failure)


def attempts_text(attempts: int) -> str:
    """``after 3 attempt(s)``; an item that failed before its satellite was called (a secret
    that is not set, a config invalid once filled in) had none."""
    return f"after {attempts} attempt(s)" if attempts else "before its first attempt"

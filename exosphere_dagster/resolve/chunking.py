"""How many items one Dagster step gets: no more chunks than the run's parallelism buys, chunk
sizes bounded per SLA tier (bigger batches for longer SLAs).

The numbers are the tier's (``yaml_loader/tiers.py``, the one home of tiers): its chunk bounds
and chunks per worker, and for batched satellites (an LLM: one chunk is one batch call) its
batch bounds. The largest chunk bounds a step's memory and what a lost step redoes; it is the
one reason a run gets more chunks than its executor runs at once. An unknown tier is an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from yaml_loader.tiers import tier

MAX_CHUNKS = 64  # for callers that do not know the run's parallelism


def bounds(sla: str, batched: bool = False) -> tuple[int, int]:
    """(smallest, largest) items per step on tier ``sla``; a batched satellite's are the tier's
    batch bounds (small batches early on a 6h tier, one large batch on a 24h tier)."""
    found = tier(sla)
    return found.batch_bounds if batched else found.chunk_bounds


def max_chunks(sla: str, workers: int) -> int:
    """Chunks per segment for a run whose executor runs ``workers`` steps at once: a 6h tier
    splits each worker's share (uneven items even out, first results arrive sooner), a 24h
    tier gives each worker one chunk, the fewest steps."""
    return max(1, workers) * tier(sla).chunks_per_worker


def chunk_size(
    item_count: int, sla: str, batched: bool = False, max_chunks: int = MAX_CHUNKS
) -> int:
    low, high = bounds(sla, batched)
    wanted = math.ceil(item_count / max_chunks) if item_count else 1
    return max(low, min(high, wanted))


def run_chunk_size(item_count: int, sla: str, workers: int, batched: bool = False) -> int:
    """Chunk size for a run whose executor runs ``workers`` steps at once: at most
    ``max_chunks`` chunks, unless the tier's largest chunk needs more; then a whole number of
    waves of ``max_chunks`` chunks, so that no worker is left with a last chunk alone."""
    limit = max_chunks(sla, workers)
    size = chunk_size(item_count, sla, batched, limit)
    chunks = math.ceil(item_count / size) if item_count else 1
    if chunks <= limit:
        return size
    waves = math.ceil(chunks / limit)
    return max(bounds(sla, batched)[0], math.ceil(item_count / (waves * limit)))


def split(items: list, size: int) -> list[list]:
    """Consecutive chunks of ``size``; always at least one (possibly empty) chunk, so the
    downstream collect steps run even when no item arrived."""
    if not items:
        return [[]]
    return [items[i : i + size] for i in range(0, len(items), size)]


def chunk_key(index: int) -> str:
    """The mapping key of a segment's ``index``-th chunk (``c00000``, sorted as numbers)."""
    return f"c{index:05d}"


def keyed_chunks(
    items: list[Any], size: int, placed: Mapping[str, str] | None = None
) -> dict[str, list[Any]]:
    """``items`` (anything with an ``id``) in chunks of ``size``, by mapping key. An item
    ``placed`` in a chunk before (by an earlier run of the same gathering step) stays in it;
    the others make new chunks after the last key. A re-execution thus finds every item in the
    chunk whose checkpoints hold it: a good item already delivered is never delivered again."""
    placed = placed or {}
    chunks: dict[str, list[Any]] = {}
    fresh = []
    for item in items:
        key = placed.get(item.id)
        if key is None:
            fresh.append(item)
        else:
            chunks.setdefault(key, []).append(item)
    first = 1 + max((int(k[1:]) for k in placed.values()), default=-1)
    if fresh or not chunks:
        for index, part in enumerate(split(fresh, size)):
            chunks[chunk_key(first + index)] = part
    return dict(sorted(chunks.items()))

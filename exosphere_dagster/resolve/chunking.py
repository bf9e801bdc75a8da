"""How many items one Dagster step gets: no more chunks than the run's parallelism buys, chunk
sizes bounded per SLA tier (bigger batches for longer SLAs).

The formula is ``ChunkPolicy.size`` (resolve/execution_plan.py); ``resolve()`` gives each
segment its policy from the tier (chunk bounds, or batch bounds for a batched satellite: an LLM,
one chunk is one batch call, ``ChunkPolicy.of_tier``). The functions below serve callers that
hold no resolved plan (tests of the formula). A run gets more chunks than its executor runs at
once only for the tier's largest chunk (up to a cap on a segment's chunks, past which chunks
grow) or for the bytes of its items (``CHUNK_BYTES``). An unknown tier is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exosphere_dagster.resolve.execution_plan import ChunkPolicy
from yaml_loader.tiers import tier

MAX_CHUNKS = 64  # for callers that do not know the run's parallelism


def policy(sla: str, batched: bool = False) -> ChunkPolicy:
    """The chunk policy of tier ``sla``: what ``resolve()`` gives each segment (NodePlan.chunk).
    For callers that hold no ExecutionPlan yet; the formula is ChunkPolicy's alone."""
    return ChunkPolicy.of_tier(tier(sla), batched)


def bounds(sla: str, batched: bool = False) -> tuple[int, int]:
    """(smallest, largest) items per step on tier ``sla`` (batch bounds when ``batched``)."""
    found = policy(sla, batched)
    return found.low, found.high


def max_chunks(sla: str, workers: int) -> int:
    return policy(sla).max_chunks(workers)


def chunk_size(
    item_count: int, sla: str, batched: bool = False, max_chunks: int = MAX_CHUNKS
) -> int:
    return policy(sla, batched).bounded(item_count, max_chunks)


def run_chunk_size(item_count: int, sla: str, workers: int, batched: bool = False) -> int:
    """ChunkPolicy.size of tier ``sla``'s policy (read ``NodePlan.chunk`` where a plan is
    resolved)."""
    return policy(sla, batched).size(item_count, workers)


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

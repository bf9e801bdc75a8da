"""How many items one Dagster step gets: no more chunks than the run's parallelism buys, chunk
sizes bounded per SLA tier (bigger batches for longer SLAs; docs/cost.md shows what that saves)."""

from __future__ import annotations

import math

# (smallest chunk, largest chunk) per SLA tier: a 6h cluster spreads wide for latency, a 24h
# cluster packs items densely, since every step costs process start and event-log writes. The
# largest chunk bounds a step's memory and what a lost step redoes; it is the one reason a run
# gets more chunks than its executor runs at once.
TIER_CHUNK_BOUNDS = {"6h": (10, 500), "12h": (50, 1000), "24h": (200, 2000)}
# Chunks per worker: a 6h cluster splits each worker's share in four, so that uneven items even
# out across workers and the first chunks reach the last satellite sooner; a 24h cluster gives
# each worker one chunk, the fewest steps.
TIER_CHUNKS_PER_WORKER = {"6h": 4, "12h": 2, "24h": 1}
# Batched (LLM) satellites: one chunk is one batch call. A 6h cluster sends small batches early
# (its first answers come after one small batch); a 24h cluster sends one large batch, which a
# GPU answers for little more than a small one (bench/sla_cost.py measures it).
TIER_BATCH_BOUNDS = {"6h": (8, 128), "12h": (64, 512), "24h": (256, 4096)}
MAX_CHUNKS = 64  # for callers that do not know the run's parallelism


def max_chunks(sla: str, workers: int) -> int:
    """Chunks per segment for a run whose executor runs ``workers`` steps at once."""
    return max(1, workers) * TIER_CHUNKS_PER_WORKER.get(sla, 1)


def chunk_size(
    item_count: int, sla: str, batched: bool = False, max_chunks: int = MAX_CHUNKS
) -> int:
    low, high = _bounds(sla, batched)
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
    low = _bounds(sla, batched)[0]
    return max(low, math.ceil(item_count / (waves * limit)))


def _bounds(sla: str, batched: bool) -> tuple[int, int]:
    table = TIER_BATCH_BOUNDS if batched else TIER_CHUNK_BOUNDS
    return table.get(sla, table["24h"])


def split(items: list, size: int) -> list[list]:
    """Consecutive chunks of ``size``; always at least one (possibly empty) chunk, so the
    downstream collect steps run even when no item arrived."""
    if not items:
        return [[]]
    return [items[i : i + size] for i in range(0, len(items), size)]

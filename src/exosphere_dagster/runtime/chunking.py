"""How many items one Dagster step gets: bigger batches for longer SLAs, bounded step counts."""

from __future__ import annotations

import math

# (smallest chunk, largest chunk) per SLA tier: a 6h cluster spreads wide for latency, a 24h
# cluster packs items densely because each step costs ~1 s of process start with the
# multiprocess executor (DESIGN.md).
TIER_CHUNK_BOUNDS = {"6h": (10, 500), "12h": (50, 1000), "24h": (200, 2000)}
BATCHED_MIN_CHUNK = 256  # GPU satellites: one chunk is one batch call; bigger is cheaper
MAX_CHUNKS = 64  # target steps per satellite per run (the tier's largest chunk caps it)


def chunk_size(
    item_count: int, sla: str, batched: bool = False, max_chunks: int = MAX_CHUNKS
) -> int:
    low, high = TIER_CHUNK_BOUNDS.get(sla, TIER_CHUNK_BOUNDS["24h"])
    if batched:
        low = max(low, BATCHED_MIN_CHUNK)
        high = max(high, BATCHED_MIN_CHUNK)
    wanted = math.ceil(item_count / max_chunks) if item_count else 1
    return max(low, min(high, wanted))


def split(items: list, size: int) -> list[list]:
    """Consecutive chunks of ``size``; always at least one (possibly empty) chunk, so the
    downstream collect steps run even when no item arrived."""
    if not items:
        return [[]]
    return [items[i : i + size] for i in range(0, len(items), size)]

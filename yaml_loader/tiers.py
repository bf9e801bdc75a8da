"""The SLA tiers: one home for everything a tier decides.

A cluster's ``sla`` buys time, and the time is spent on cost: a longer tier runs at a lower
priority, packs items into bigger chunks (fewer steps, bigger batches), and runs on cheaper,
interruptible capacity. The plan freezes a cluster's tier (``ClusterPlan.sla``); the resolve
stage (``exosphere_dagster.resolve.resolve``) is its one reader and turns it into the numbers
every later stage reads (priority, deadline rule, chunk bounds, pool). An unknown tier name is
an error, never a silent fallback to another tier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Capacity = Literal["on-demand", "spot"]


@dataclass(frozen=True)
class SlaTier:
    name: str
    hours: int
    priority: int  # Dagster run priority: higher runs first
    chunk_bounds: tuple[int, int]  # (smallest, largest) items per step
    chunks_per_worker: int  # more chunks per worker even out uneven items (latency)
    capacity: Capacity  # the node pool the tier's pods go to (and its price row)
    batch_bounds: tuple[int, int]  # (smallest, largest) items per step of a batched satellite

    @property
    def seconds(self) -> int:
        return self.hours * 3600


# Batched satellites (an LLM: one step's chunk is one batch call) get their own bounds: a 6h
# tier sends small batches early, so first answers come back while later batches run; a 24h
# tier sends one large batch, as many prompts per decode step as the engine takes (vLLM offline
# batching, or a Batch API file), the fewest steps and the lowest cost per token.
TIERS: Mapping[str, SlaTier] = {
    "6h": SlaTier("6h", 6, 30, (10, 500), 4, "on-demand", batch_bounds=(8, 256)),
    "12h": SlaTier("12h", 12, 20, (50, 1000), 2, "spot", batch_bounds=(64, 1024)),
    "24h": SlaTier("24h", 24, 10, (200, 10000), 1, "spot", batch_bounds=(256, 4096)),
}
TIER_NAMES = tuple(TIERS)


def tier(name: str) -> SlaTier:
    """The tier called ``name``; a KeyError naming the tiers when there is none."""
    try:
        return TIERS[name]
    except KeyError:
        raise KeyError(f"unknown SLA tier {name!r}: expected one of {', '.join(TIERS)}") from None

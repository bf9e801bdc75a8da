"""The resolved plan: what a cluster means at run time under one deployment, decided once.

``resolve()`` (resolve/resolve.py) computes every derived value here from the ``ClusterPlan``
and the :class:`~exosphere_dagster.resolve.deployment.Deployment`; translate, the runtime, cost,
the estimator, ``exosphere plan`` and the cluster API read these fields and never recompute
them (no tier lookup, no quantity parsing, no settings read outside resolve). Frozen: a plan is
shared by every step of a run, and no stage may change what another reads. Dagster-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from exosphere_dagster.resolve.cost.prices import model_of
from exosphere_dagster.resolve.placement import Placement
from exosphere_dagster.resolve.segments import Segment
from exosphere_dagster.resolve.tags import (
    DEADLINE_TAG,
    SLA_SECONDS_TAG,
    TRIGGER_TIME_TAG,
    URGENT_WITHIN_TAG,
)
from satellite_ops.context import BatchPolicy  # the one Batch API policy: satellites read it as is
from yaml_loader.ir import ClusterPlan, RetrySettings, SatelliteNode
from yaml_loader.quantities import compute_of
from yaml_loader.tiers import SlaTier

STEP_RETRIES = 2  # Dagster re-runs a step lost with its process (a pod evicted, a node lost)
STEP_RETRY_DELAY = 5.0  # seconds before that re-run
URGENT_FRACTION = 0.25  # a run is urgent when no more than this share of its SLA is left
SEGMENT_CHUNKS_CAP = 128  # a segment's steps at most (ChunkPolicy.size), unless one wave is more
CHUNK_BYTES = 64 * 2**20  # a chunk's items, pickled, at most (ChunkPolicy.size's item_bytes)


@dataclass(frozen=True)
class ResourceRequest:
    """One pod's requests as numbers (cost reads these) and its :class:`Placement` (the
    ``dagster-k8s/config`` value is written from it: requests as text, pools, image, labels)."""

    placement: Placement
    cpu: float = 0.0  # cores (0: none requested)
    memory_bytes: float = 0.0
    gpu: int = 0

    @property
    def pool(self) -> str:
        """The first pool's name: the ``exosphere.host/pool`` label and the price table's key."""
        return self.placement.pool

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / 2**30

    @classmethod
    def of(cls, placement: Placement) -> ResourceRequest:
        """A placement's requests as numbers, by the one quantity parser the cluster file is
        checked with; QuantityError if they are not quantities."""
        asks = placement.requests
        compute = compute_of(asks.get("cpu"), asks.get("memory"), placement.gpu or None)
        return cls(placement, compute.cpu, compute.memory_bytes, compute.gpu)


@dataclass(frozen=True)
class ChunkPolicy:
    """Items per step of a segment: the tier's chunk bounds, or its batch bounds when a node of
    the segment is batched (one call per chunk), and how many chunks each worker gets.

    ``most_chunks`` caps a segment's chunks for very large runs: past it, chunks grow beyond
    ``high``. Each chunk is a Dagster step, with its process, its event-log rows and its place
    in the executor's bookkeeping, and a finished item is checkpointed whatever its chunk's
    size, so past a few hundred steps a segment pays more in steps than a larger chunk costs
    (bench/results/large_run.md). Batch bounds are a model's or a provider's limit: no cap."""

    low: int
    high: int
    chunks_per_worker: int
    most_chunks: int | None = None

    @classmethod
    def of_tier(cls, tier: SlaTier, batched: bool = False) -> ChunkPolicy:
        """Tier ``tier``'s policy: its batch bounds for a segment with a batched satellite (one
        call per chunk), else its chunk bounds and the cap on chunks. What ``resolve()`` gives
        each segment."""
        if batched:
            return cls(*tier.batch_bounds, tier.chunks_per_worker)
        return cls(*tier.chunk_bounds, tier.chunks_per_worker, SEGMENT_CHUNKS_CAP)

    def max_chunks(self, workers: int) -> int:
        """Chunks per segment for a run whose executor runs ``workers`` steps at once."""
        return max(1, workers) * self.chunks_per_worker

    def bounded(self, item_count: int, chunks: int) -> int:
        """Items per chunk to cut ``item_count`` items in about ``chunks`` chunks, within
        the bounds."""
        wanted = math.ceil(item_count / chunks) if item_count else 1
        return max(self.low, min(self.high, wanted))

    def size(self, item_count: int, workers: int, item_bytes: float = 0.0) -> int:
        """Chunk size: at most ``max_chunks(workers)`` chunks, unless the largest chunk needs
        more; then a whole number of waves of that many chunks, so that no worker is left with
        a last chunk alone, and no more waves than ``most_chunks`` holds (at least one). Never
        below ``low``; above ``high`` only past that cap.

        ``item_bytes`` (an item's pickled size, from a sample) bounds a chunk to
        ``CHUNK_BYTES`` whatever the counts say, below ``low`` too: the counts assume small
        items, and a step holds its chunk in memory (parsed documents, model outputs)."""
        size = self._counted(item_count, workers)
        if item_bytes > 0:
            size = min(size, max(1, int(CHUNK_BYTES // item_bytes)))
        return size

    def _counted(self, item_count: int, workers: int) -> int:
        limit = self.max_chunks(workers)
        size = self.bounded(item_count, limit)
        chunks = math.ceil(item_count / size) if item_count else 1
        if chunks <= limit:
            return size
        waves = math.ceil(chunks / limit)
        if self.most_chunks is not None:
            waves = min(waves, max(1, self.most_chunks // limit))
        return max(self.low, math.ceil(item_count / (waves * limit)))


@dataclass(frozen=True)
class NodePlan:
    """Everything decided about one satellite of the cluster."""

    node: SatelliteNode
    definition: Any  # satellite_ops.registry.SatelliteDefinition
    retry: RetrySettings  # per-item retries inside a step (the file's, else the default 5)
    step_retries: int  # Dagster RetryPolicy for a lost step
    step_retry_delay: float
    timeout_seconds: float | None
    concurrency: int  # items at once inside a step: the file's, else the satellite's
    segment: str  # the node that cuts its chunks ("" for a log sink: no chunks)
    chunk: ChunkPolicy  # its segment's bounds
    batched: bool  # the satellite makes one call per chunk (definition.batched)
    resources: ResourceRequest
    model: tuple[str, str] | None  # (engine, model) for token prices, from its static config
    batch_api: bool | None  # static config sends it through a Batch API; None: templated
    op_priority: int  # Dagster op priority: deeper satellites first (finish chunks early)

    def model_under(self, configured: SatelliteNode) -> tuple[str, str] | None:
        """The (engine, model) a run prices: the resolved one, unless the run's op config
        edited the node (a Launchpad edit), then that config's."""
        if configured is self.node:
            return self.model
        return model_of(configured.config, self.definition.config_model)


@dataclass(frozen=True)
class RunWindow:
    """The deadline rule, the one there is: a run is due ``sla_seconds`` after its trigger time
    and urgent when no more than ``urgent_within_seconds`` (plus its expected runtime) is left.

    ``resolve()`` makes it part of every :class:`RunPolicy`, and writes its two numbers into the
    run tags (:meth:`as_tags`), so that code holding only a run's tags (the deadline sensor, a
    launch through GraphQL, a re-execution) applies the same rule (:meth:`of_tags`) and never
    looks a tier up."""

    sla_seconds: int
    urgent_within_seconds: float  # the deadline sensor boosts a run with no more time left

    def deadline(self, trigger_time: datetime) -> datetime:
        """Trigger time + the SLA in real (UTC) seconds: across a daylight saving switch a 24h
        SLA still lasts 24 hours. Naive times are taken as UTC."""
        return _utc(trigger_time) + timedelta(seconds=self.sla_seconds)

    def window_tags(self, when: datetime) -> dict[str, str]:
        """``exosphere/trigger_time`` and ``exosphere/deadline`` of a run triggered at ``when``."""
        return {
            TRIGGER_TIME_TAG: _utc(when).isoformat(),
            DEADLINE_TAG: self.deadline(when).isoformat(),
        }

    def is_urgent(self, deadline: datetime, now: datetime, expected_runtime: float = 0.0) -> bool:
        """Whether a run due at ``deadline`` has no more than ``urgent_within_seconds`` plus
        ``expected_runtime`` (its job's usual duration) left at ``now``."""
        left = (deadline - now).total_seconds()
        return left <= self.urgent_within_seconds + expected_runtime

    def as_tags(self) -> dict[str, str]:
        """The rule's numbers as run tags (every run of the job carries them)."""
        return {
            SLA_SECONDS_TAG: str(self.sla_seconds),
            URGENT_WITHIN_TAG: f"{self.urgent_within_seconds:g}",
        }

    @classmethod
    def of_tags(cls, tags: Mapping[str, str]) -> RunWindow | None:
        """The rule a run's tags carry (:meth:`as_tags`); None for a run without it (not a
        cluster's run)."""
        try:
            return cls(int(tags[SLA_SECONDS_TAG]), float(tags[URGENT_WITHIN_TAG]))
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class RunPolicy(RunWindow):
    """What every run of the cluster gets, however it was launched: its deadline rule (a
    :class:`RunWindow`) and the following."""

    tier: str  # "6h" | "12h" | "24h"
    priority: int  # dagster/priority
    max_runtime_seconds: int  # the tighter of the SLA and the cluster's own dagster/max_runtime
    tags: Mapping[str, str]  # every run's tags (cluster tags, priority, max runtime, sla, ...)
    light: ResourceRequest  # start/gather/summary steps and the run pod


def _utc(when: datetime) -> datetime:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass(frozen=True)
class ExecutionPlan:
    """A cluster as it will run under one deployment: the input of translate and the runtime."""

    plan: ClusterPlan
    run: RunPolicy
    nodes: Mapping[str, NodePlan]  # every satellite: main, failure and log branches
    segments: tuple[Segment, ...]  # main branch, then the failure branch
    chunks: Mapping[str, ChunkPolicy]  # per segment (by the name of the node that cuts it)
    batch_api: BatchPolicy

    def node(self, node_id: str) -> NodePlan:
        return self.nodes[node_id]

    @property
    def log_sinks(self) -> tuple[NodePlan, ...]:
        return tuple(self.nodes[n.id] for n in self.plan.log_nodes)

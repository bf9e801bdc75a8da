"""What one satellite step needs besides its items, and the values derived from it once per chunk.

A :class:`ChunkJob` is built by the step (``runtime/step_runner.py``) or by a test or bench,
and read by ``runtime/execute.py`` for every item: whatever can be worked out once per chunk
(the retry policy, the timeout, the concurrency bound, a config that no item can change) is
worked out here, so the per-item path only reads it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exosphere_dagster.resolve.execution_plan import NodePlan
from exosphere_dagster.runtime.checkpoint import CheckpointLog, CheckpointState
from exosphere_dagster.runtime.items import ItemEvent
from satellite_ops.context import BatchPolicy, MemoryState, StepState
from satellite_ops.registry import SatelliteDefinition
from yaml_loader.ir import RetrySettings, SatelliteNode
from yaml_loader.templates import renders_to_itself


@dataclass
class ChunkJob:
    """Everything one step needs besides the items themselves.

    ``plan`` is the node as resolved for the run (retries, timeout, concurrency): a step of a
    cluster always has one. Without it (a satellite run alone: a unit test, a bench) the same
    values come from the node as written and the satellite's own bound."""

    node: SatelliteNode  # the node with this run's config (Launchpad edits applied)
    definition: SatelliteDefinition
    base_scope: Mapping[str, Any]  # cluster, run and the node's resolved secrets
    log: logging.Logger | logging.LoggerAdapter
    run_id: str = ""
    cluster: str = ""
    checkpoint: CheckpointLog | None = None
    sleep: Any = asyncio.sleep  # injectable for tests of the backoff schedule
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    metrics: dict[str, float] = field(default_factory=dict)  # satellites add token counts etc.
    deadline: datetime | None = None  # the run's: trigger time + SLA (aware, UTC)
    sla: str = ""
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    plan: NodePlan | None = None
    events: list[ItemEvent] = field(default_factory=list)  # what happened to items, in order

    @property
    def retry(self) -> RetrySettings:
        return self.plan.retry if self.plan else self.node.retry

    @property
    def timeout(self) -> float | None:
        return self.plan.timeout_seconds if self.plan else self.node.timeout

    @property
    def concurrency(self) -> int:
        if self.plan:
            return self.plan.concurrency
        return self.node.concurrency or self.definition.max_concurrency

    @functools.cached_property
    def plain_config(self) -> dict[str, Any] | None:
        """The node's config when rendering cannot change it (a mapping whose values are
        neither templates nor containers), else None. Every item's raw config is then a copy
        of it, what rendering would give, without a scope built and walked per item."""
        config = self.node.config
        if isinstance(config, Mapping) and all(map(renders_to_itself, config.values())):
            return dict(config)
        return None

    @functools.cached_property
    def state(self) -> StepState:
        """The step's durable state: in its chunk's checkpoint log, so it outlives the step."""
        return CheckpointState(self.checkpoint) if self.checkpoint else MemoryState()

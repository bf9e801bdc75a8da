"""The frozen plan (IR) a cluster compiles to; the Dagster builder reads only this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from yaml_loader.errors import KeyPath
from yaml_loader.identity import job_name_for as job_name_for  # the rule lives in identity.py
from yaml_loader.identity import op_name_for as op_name_for
from yaml_loader.models import Resources, TriggerSpec
from yaml_loader.tiers import SlaTier

Branch = Literal["main", "failure", "logs"]


@dataclass(frozen=True)
class RetrySettings:
    """Per-item retries inside a step: ``delay * backoff**attempt``, capped at ``max_delay``."""

    retries: int
    delay: float
    backoff: float = 2.0
    max_delay: float = 600.0

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(self.delay * self.backoff ** (attempt - 1), self.max_delay)

    def wait_for(self, attempt: int, retry_after: float | None = None) -> float:
        """The one retry-wait rule (a satellite's item, a log sink's send): the backoff before
        retry ``attempt``, or longer when the failure asked for a ``Retry-After`` (capped at
        ``max_delay``; a negative or non-numeric ask is ignored)."""
        wait = self.wait_before(attempt)
        asked = isinstance(retry_after, int | float) and not isinstance(retry_after, bool)
        if asked and retry_after >= 0:
            wait = max(wait, min(float(retry_after), self.max_delay))
        return wait


@dataclass(frozen=True)
class SatelliteNode:
    id: str
    op_name: str
    name: str
    uses: str
    branch: Branch
    parents: tuple[str, ...]
    config: Any  # raw values with CompiledTemplate objects in place of templated strings
    input: Any | None
    retry: RetrySettings
    timeout: float | None
    concurrency: int | None
    resources: Resources | None
    secrets: frozenset[str]  # secret names its templates read: only these are resolved for it
    line: int
    column: int
    key_path: KeyPath = ()  # where the satellite is in its file: cluster.satellites[2]
    min_success_ratio: float | None = None  # the run fails only below this share of successes
    launch_editable: frozenset[str] = frozenset()  # fixed config keys a launch may change


@dataclass(frozen=True)
class ClusterPlan:
    identifier: str
    job_name: str
    file: str
    title: str | None
    description: str | None
    sla: SlaTier
    trigger: TriggerSpec
    secrets: Mapping[str, str]  # name -> reference (env:X, aws-secretsmanager:..., path) or literal
    tags: Mapping[str, str]
    nodes: tuple[SatelliteNode, ...]  # main branch, topologically sorted
    failure_from: str | None = None
    failure_nodes: tuple[SatelliteNode, ...] = ()
    log_nodes: tuple[SatelliteNode, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)
    identifier_line: int = field(default=1, compare=False)  # where ``identifier`` is in the file
    identifier_column: int = field(default=1, compare=False)

    def node(self, node_id: str) -> SatelliteNode:
        for node in (*self.nodes, *self.failure_nodes, *self.log_nodes):
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def children(self, node_id: str) -> tuple[SatelliteNode, ...]:
        branch = self.node(node_id).branch
        pool = self.nodes if branch == "main" else self.failure_nodes
        return tuple(n for n in pool if node_id in n.parents)

    def descendants(self, node_id: str) -> set[str]:
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            for child in self.children(stack.pop()):
                if child.id not in seen:
                    seen.add(child.id)
                    stack.append(child.id)
        return seen

    def routed_nodes(self) -> frozenset[str]:
        """Main satellites whose failed items go to the failure branch."""
        if self.failure_from is None or not self.failure_nodes:
            return frozenset()
        return frozenset({self.failure_from, *self.descendants(self.failure_from)})

    @property
    def trigger_text(self) -> str:
        t = self.trigger
        if t.cron:
            return f"cron '{t.cron}'" + (f" ({t.timezone})" if t.timezone else "")
        if t.s3:
            return f"new objects in s3://{t.s3.bucket}/{t.s3.prefix}"
        if t.folder:
            return f"new files in {t.folder.path} matching {t.folder.pattern}"
        return "api-call"

"""Dagster's step bookkeeping (``ActiveExecution``), re-checking only the steps whose upstream
changed.

Dagster's executors call ``ActiveExecution._update`` about three times per loop (a loop per
event, or every 20 ms per running step). Each call re-checks every pending step; under
``require_upstream_step_success: false`` (our default) each check also rebuilds the union of
finished steps and walks every input of the step, so a pass costs about pending steps x
finished steps, and the summary step alone reads one input per chunk. At 1,000,000 items the run
process spent its CPU there and started about one step a second (bench/results/large_run.md).

A pending step's verdict (run it, skip it, abandon it) reads only the state of the steps it
depends on (its ``_pending`` entry: the steps of this run it reads outputs from) and outputs of
parent runs, which do not change during a run. So a pass here re-checks only the pending steps
one of whose upstream steps changed since the last pass (finished, failed, skipped, abandoned or
yielded an output), a step put back for retry, and every step when new mapped steps appear:
Dagster's own check decides each of them, and the verdicts are the same, only cheaper.

``install()`` makes Dagster's multiprocess and step-delegating (Kubernetes) executors use it: both
make their ``ActiveExecution`` by the name their module imported, so that name is replaced. A
patch on a library internal: re-check at every Dagster upgrade (the pin keeps the suite on it;
tests/exosphere_dagster/test_active_execution.py compares every verdict with Dagster's own).
"""

from __future__ import annotations

from typing import Any

from dagster._core.execution.plan.active import ActiveExecution


class ChangeTrackingExecution(ActiveExecution):
    """``ActiveExecution`` whose passes re-check only the pending steps that may have changed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._changed: set[str] | None = None  # upstream steps changed since the last pass
        self._recheck: set[str] = set()  # pending steps to check whatever changed
        super().__init__(*args, **kwargs)  # its first pass checks every step

    def _update(self) -> None:
        if self._changed is None or self._new_dynamic_mappings:
            self._changed, self._recheck = set(), set()
            super()._update()  # every pending step, the new mapped ones too
            return
        changed, recheck = self._changed, self._recheck
        self._changed, self._recheck = set(), set()
        everything = self._pending
        examined = {
            key: deps
            for key, deps in everything.items()
            if key in recheck or (changed and not deps.isdisjoint(changed))
        }
        self._pending = dict(examined)  # Dagster's pass deletes the steps it moves on
        try:
            super()._update()
        finally:
            for key in examined.keys() - self._pending.keys():
                del everything[key]
            self._pending = everything

    def _touched(self, step_key: str) -> None:
        if self._changed is not None:
            self._changed.add(step_key)

    def mark_step_produced_output(self, step_output_handle: Any) -> None:
        super().mark_step_produced_output(step_output_handle)
        self._touched(step_output_handle.step_key)

    def mark_success(self, step_key: str) -> None:
        super().mark_success(step_key)
        self._touched(step_key)

    def mark_failed(self, step_key: str) -> None:
        super().mark_failed(step_key)
        self._touched(step_key)

    def mark_skipped(self, step_key: str) -> None:
        super().mark_skipped(step_key)
        self._touched(step_key)

    def mark_abandoned(self, step_key: str) -> None:
        super().mark_abandoned(step_key)
        self._touched(step_key)

    def mark_up_for_retry(self, step_key: str, at_time: float | None = None) -> None:
        super().mark_up_for_retry(step_key, at_time)
        self._recheck.add(step_key)  # back in _pending when it retries at once
        self._touched(step_key)


def install() -> None:
    """Make Dagster's multiprocess and step-delegating executors keep their steps with
    ``ChangeTrackingExecution`` (module docstring). Idempotent."""
    from dagster._core.executor import multiprocess
    from dagster._core.executor.step_delegating import step_delegating_executor

    for module in (multiprocess, step_delegating_executor):
        if module.ActiveExecution is ActiveExecution:
            module.ActiveExecution = ChangeTrackingExecution  # type: ignore[misc]

"""The executor's step bookkeeping re-checks only the steps whose upstream changed, and decides
exactly what Dagster's own ``ActiveExecution`` decides (translate/active_execution.py).

Both are driven through the same random histories of a job shaped like a cluster's (mapped
chunks with items and report outputs, a re-chunking step, a fan-in summary): steps finish in
random order, some yield only part of their outputs, some fail after yielding, some fail without
any output, some are retried. Every call's answer (steps to run, to skip, to abandon) must match.
"""

from __future__ import annotations

import random

import pytest
from dagster import DynamicOut, In, Nothing, Out, job, op
from dagster._core.definitions.reconstruct import reconstructable
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.execution.api import create_execution_plan
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.objects import StepFailureData, StepSuccessData
from dagster._core.execution.plan.outputs import StepOutputData, StepOutputHandle
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig

from exosphere_dagster.translate import active_execution
from exosphere_dagster.translate.active_execution import ChangeTrackingExecution

CHUNK_OUTS = {"items": Out(is_required=False), "report": Out(is_required=False)}


@op(out={"chunks": DynamicOut(), "manifest": Out()})
def start():
    yield from ()


@op(out=CHUNK_OUTS)
def first(chunk):
    yield from ()


@op(out=CHUNK_OUTS)
def second(chunk, reports):
    yield from ()


@op(ins={"items": In(), "manifest": In()}, out={"chunks": DynamicOut(), "manifest": Out()})
def rechunk(items, manifest):
    yield from ()


@op(out=CHUNK_OUTS)
def third(chunk):
    yield from ()


@op(ins={"a": In(), "b": In(), "c": In(Nothing)})
def summary(a, b):
    pass


@job
def cluster_shaped():
    chunks, manifest = start()

    def one_chunk(chunk):
        items, reports = first(chunk)
        return second(items, reports)

    later_items, later_reports = chunks.map(one_chunk)
    again, again_manifest = rechunk(later_items.collect(), manifest)
    _, third_reports = again.map(third)
    summary(later_reports.collect(), third_reports.collect(), again_manifest)


def event(kind: DagsterEventType, step_key: str, data=None) -> DagsterEvent:
    return DagsterEvent(kind.value, "cluster_shaped", step_key=step_key, event_specific_data=data)


def history(kind: type[ActiveExecution], seed: int, partial_outputs: bool) -> list:
    """Every answer ``kind`` gives while a random (seeded) history of the job plays out."""
    rng = random.Random(seed)
    plan = create_execution_plan(reconstructable(cluster_shaped))
    answers: list = []
    running: list = []
    config = StepDependencyConfig(require_upstream_step_success=not partial_outputs)
    active = kind(plan, RetryMode.ENABLED, step_dependency_config=config)
    active.__enter__()  # not its __exit__: a history may end with steps left waiting
    while True:  # as the executors loop: a pass after each event, even the last one
        started = active.get_steps_to_execute(limit=rng.choice([None, 1, 2]))
        answers.append(("run", [s.key for s in started]))
        running += started
        for step in active.get_steps_to_skip():
            answers.append(("skip", step.key))
            active.mark_skipped(step.key)
        for step in active.get_steps_to_abandon():
            answers.append(("abandon", step.key))
            active.mark_abandoned(step.key)
        if not running:
            if active.is_complete or answers[-2:] == [("run", [])] * 2:
                return [*answers, ("left waiting", sorted(active._pending))]
            continue
        finish(active, running.pop(rng.randrange(len(running))), rng)


def finish(active: ActiveExecution, step, rng: random.Random) -> None:
    """The events of one step's end: some outputs (mapped ones with random keys), then success,
    failure or a retry."""
    fate = rng.choices(["success", "partial", "failed after", "failed", "retry"], [6, 1, 1, 1, 1])
    retried = step.key in active.retry_state.snapshot_attempts()
    fate = "success" if retried or step.key == "start" else fate[0]  # start: a history to see
    for output in step.step_outputs:
        if fate == "failed" or (fate == "partial" and rng.random() < 0.5):
            continue
        keys = [f"c{i}" for i in range(rng.randint(1, 4))] if output.is_dynamic else [None]
        for key in keys:
            handle = StepOutputHandle(step.key, output.name, key)
            active.handle_event(
                event(DagsterEventType.STEP_OUTPUT, step.key, StepOutputData(handle))
            )
    if fate in ("failed", "failed after"):
        active.handle_event(
            event(DagsterEventType.STEP_FAILURE, step.key, StepFailureData(None, None))
        )
    elif fate == "retry":
        active.mark_up_for_retry(step.key)
    else:
        active.handle_event(event(DagsterEventType.STEP_SUCCESS, step.key, StepSuccessData(1.0)))


@pytest.mark.parametrize("partial_outputs", [True, False])
@pytest.mark.parametrize("seed", range(40))
def test_every_answer_is_dagsters_own(seed, partial_outputs):
    assert history(ChangeTrackingExecution, seed, partial_outputs) == history(
        ActiveExecution, seed, partial_outputs
    )


def test_the_histories_reach_every_verdict():
    """The random histories above do exercise runs, skips, abandons and the summary."""
    seen = {
        (answer[0], answer[1] == ["summary"] or answer[1] == "summary")
        for seed in range(40)
        for answer in history(ChangeTrackingExecution, seed, partial_outputs=True)
    }
    assert {("run", True), ("skip", False), ("abandon", False)} <= seen


def test_a_pass_with_nothing_changed_checks_no_step(monkeypatch):
    """What makes it cheap: with chunk steps waiting on a running step, a pass after no event
    checks none of them (Dagster's own re-checks every pending step on every pass)."""
    plan = create_execution_plan(reconstructable(cluster_shaped))
    checked: list[str] = []
    original = ActiveExecution._should_skip_step

    def counting(self, step_key):
        checked.append(step_key)
        return original(self, step_key)

    monkeypatch.setattr(ActiveExecution, "_should_skip_step", counting)
    config = StepDependencyConfig(require_upstream_step_success=False)
    active = ChangeTrackingExecution(plan, RetryMode.ENABLED, step_dependency_config=config)
    active.__enter__()  # no __exit__: the run is left half done
    (step,) = active.get_steps_to_execute()
    finish_with(active, step, {"chunks": ["c0", "c1", "c2"], "manifest": [None]})
    firsts = active.get_steps_to_execute()
    assert [s.key for s in firsts] == ["first[c0]", "first[c1]", "first[c2]"]
    checked.clear()
    for _ in range(5):
        assert active.get_steps_to_execute() == []
    assert checked == []
    finish_with(active, firsts[0], {"items": [None], "report": [None]})
    assert [s.key for s in active.get_steps_to_execute()] == ["second[c0]"]
    assert "second[c1]" not in checked  # its upstream did not change


def finish_with(active: ActiveExecution, step, outputs: dict[str, list]) -> None:
    for name, keys in outputs.items():
        for key in keys:
            handle = StepOutputHandle(step.key, name, key)
            active.handle_event(
                event(DagsterEventType.STEP_OUTPUT, step.key, StepOutputData(handle))
            )
    active.handle_event(event(DagsterEventType.STEP_SUCCESS, step.key, StepSuccessData(1.0)))


def test_install_replaces_the_executors_name_once():
    from dagster._core.executor import multiprocess

    active_execution.install()
    active_execution.install()
    assert multiprocess.ActiveExecution is ChangeTrackingExecution

"""The executor cluster jobs run with by default: Dagster's own multiprocess (or in-process)
executor, whose step processes are forked from a forkserver that already imported Dagster, the
instance's storage, the product and the satellites (``exosphere_dagster.entry.preload``). With
Dagster's default (``spawn``) every step re-imports all of that (about 2 s here); a fork costs
milliseconds (bench/job_execute.py).

It is Dagster's ``multi_or_in_process_executor`` with two more defaults, so run config still
chooses as usual. ``step_dependency_config: {require_upstream_step_success: false}``: a chunk
step that fails for an item yields its good items first, and the steps after it start on them
(docs/decisions.md, "Good items keep moving"). Choices: ``execution: config: in_process: {}``, ``multiprocess: max_concurrent: 4``,
or ``multiprocess: start_method: spawn: {}`` for a fresh interpreter per step.
``EXOSPHERE_EXECUTOR=k8s`` replaces it with ``k8s_job_executor`` (executor_for).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing import forkserver
from typing import Any

from dagster import (
    Executor,
    Field,
    InitExecutorContext,
    Selector,
    executor,
    multi_or_in_process_executor,
)
from dagster._serdes import serialize_value

from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ChunkPolicy
from exosphere_dagster.translate import active_execution
from exosphere_dagster.translate.deployment_resource import deployment_of

PRELOAD_MODULE = "exosphere_dagster.entry.preload"
PRELOAD_JOB_ENV = "EXOSPHERE_PRELOAD_JOB"  # set for the forkserver only: the job it builds
WARM_STORAGE_MODULE = "exosphere_dagster.translate.storage_warmup"  # alembic's scripts, read once
DEFAULT_START = {"forkserver": {"preload_modules": [PRELOAD_MODULE, WARM_STORAGE_MODULE]}}
DAGSTER_PRELOAD = "dagster._core.executor.multiprocess"  # Dagster puts it first in every list
logger = logging.getLogger("exosphere")


PARTIAL_OUTPUTS = {"require_upstream_step_success": False}


def partial_outputs(fields: Mapping[str, Field]) -> dict[str, Field]:
    """An executor's config fields with ``step_dependency_config`` defaulting to "a step starts
    once the outputs it reads exist", even when the step that yielded them then failed."""
    found = dict(fields)
    if "step_dependency_config" in found:
        found["step_dependency_config"] = _defaulted(
            found["step_dependency_config"],
            PARTIAL_OUTPUTS,
            "Default here: steps start on the outputs a failed step did yield "
            "(the good items of a chunk whose step failed for another item).",
        )
    return found


def _defaulted(field: Field, default: Any, description: str) -> Field:
    """Dagster's ``field`` made optional with our ``default``."""
    return Field(
        field.config_type, is_required=False, default_value=default, description=description
    )


def _config_schema() -> Field:
    """Dagster's own ``multiprocess``/``in_process`` selector, with forkserver as the default
    start method (so ``multiprocess: {max_concurrent: 4}`` still forks from the preloaded
    server), ``multiprocess`` the default choice, as in Dagster, and partial outputs moving on."""
    choices = dict(multi_or_in_process_executor.config_schema.config_type.fields)
    in_process = choices["in_process"]
    choices["in_process"] = Field(
        partial_outputs(in_process.config_type.fields), description=in_process.description
    )
    multiprocess = choices["multiprocess"]
    fields = partial_outputs(multiprocess.config_type.fields)
    fields["start_method"] = _defaulted(
        fields["start_method"],
        DEFAULT_START,
        "How step processes start. Default: forked from a server that preloaded "
        f"Dagster, the product and the satellites ({PRELOAD_MODULE}); `spawn: {{}}` starts a "
        "fresh interpreter per step, as Dagster does by default.",
    )
    choices["multiprocess"] = Field(fields, description=multiprocess.description)
    return Field(Selector(choices), default_value={"multiprocess": {}})


@executor(
    name="exosphere_multi_or_in_process",
    config_schema=_config_schema(),
    requirements=multi_or_in_process_executor.get_requirements,
)
def exosphere_executor(init_context: InitExecutorContext) -> Executor:
    """Dagster's multiprocess or in-process executor; forkserver by default (module docstring)."""
    creation = multi_or_in_process_executor.executor_creation_fn
    assert creation is not None
    inner = creation(init_context)
    start = (init_context.executor_config.get("multiprocess") or {}).get("start_method") or {}
    if "forkserver" not in start:
        return PartialOutputsExecutor(inner)
    executor = ForkserverExecutor(inner, start["forkserver"].get("preload_modules"))
    executor.start(init_context.job)  # now: the server preloads while the run starts up
    return executor


SUMMARY_STEP = "exosphere__summary"  # build/summary.py's SUMMARY_OP (not imported: no cycle)


class PartialOutputsExecutor(Executor):
    """Dagster's executor, with one guard on ``require_upstream_step_success: false``.

    Dagster's "from failure" does not re-create the mapped steps a killed run never started;
    a step collecting their outputs would then wait for ever for outputs nothing will yield.
    A re-execution of a run whose summary step never ended (killed, or stopped by a crash)
    therefore runs with Dagster's default (a step waits for its upstream steps to succeed),
    and the gathering and summary steps run the missing chunks inline (ops.complete)."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        config = self._inner.step_dependency_config
        if not config.require_upstream_step_success and not _parent_summed_up(plan_context):
            from dagster._core.execution.step_dependency_config import StepDependencyConfig

            plan_context.log.info(
                "the parent run never reached its summary step (killed?): steps wait for their "
                "upstream steps to succeed in this re-execution"
            )
            self._inner._step_dependency_config = StepDependencyConfig.default()  # type: ignore[attr-defined]
        active_execution.install()  # a pass re-checks only the steps whose upstream changed
        yield from self._inner.execute(plan_context, execution_plan)


def _parent_summed_up(plan_context: Any) -> bool:
    """True for a first run, or a re-execution whose parent's summary step ended: then every
    mapped step of the parent started, and every output a step here reads exists or will."""
    parent = plan_context.dagster_run.parent_run_id
    if not parent:
        return True
    stats = plan_context.instance.get_run_step_stats(parent, step_keys=[SUMMARY_STEP])
    return any(s.end_time for s in stats)


class ForkserverExecutor(PartialOutputsExecutor):
    """Dagster's multiprocess executor, with a forkserver that matches this process.

    Python keeps one forkserver per process, started with the environment, ``sys.path``, working
    directory and standard streams of the moment it started; its children inherit those, not
    the caller's current ones. A run worker runs one run, so that is the same thing; a process
    that executes several runs (a test session, a script) may have changed them in between (a
    secret in ``os.environ``, a new ``DAGSTER_HOME``), so the server is restarted when they
    differ from what it started with."""

    def __init__(self, inner: Executor, preload: Sequence[str] | None) -> None:
        super().__init__(inner)
        self._preload = list(preload) if preload is not None else None

    def start(self, job: Any) -> None:
        """Start (or keep) the forkserver for ``job``, a ``ReconstructableJob``."""
        preload = self._preload if self._preload is not None else [job.get_module() or "dagster"]
        ensure_forkserver(preload, serialize_value(job.get_python_origin()))

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        self.start(plan_context.reconstructable_job)
        yield from super().execute(plan_context, execution_plan)


@contextlib.contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    before = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


_lock = threading.Lock()
_started: dict[int, str] = {}  # forkserver pid -> fingerprint of what it started with


def process_fingerprint(preload: Sequence[str], job: str | None = None) -> str:
    """What a forked step inherits from the forkserver: environment, ``sys.path``, working
    directory, standard streams, the modules it preloaded and the job it built."""
    streams = []
    for fd in (0, 1, 2):
        try:
            stat = os.fstat(fd)
            streams.append((stat.st_dev, stat.st_ino))
        except OSError:
            streams.append(None)
    state = (sorted(os.environ.items()), sys.path, os.getcwd(), streams, list(preload), job)
    return hashlib.sha256(repr(state).encode()).hexdigest()


def ensure_forkserver(preload: Sequence[str], job: str | None = None) -> int | None:
    """Start Python's forkserver now with ``preload`` (as Dagster orders it), restarting one
    that was started with another environment. ``job`` (a serialized ``JobPythonOrigin``) is
    built by the preload module once, in the server, so that no step builds it again. Returns
    the server's pid."""
    modules = list(preload)
    if DAGSTER_PRELOAD not in modules:
        modules.insert(0, DAGSTER_PRELOAD)
    with _lock:
        return _ensure(modules, job)


def _ensure(modules: list[str], job: str | None) -> int | None:
    server = forkserver._forkserver
    wanted = process_fingerprint(modules, job)
    pid = getattr(server, "_forkserver_pid", None)
    if pid is not None and _started.get(pid) != wanted:
        stop = getattr(server, "_stop", None)
        if stop is None:  # pragma: no cover - every CPython with forkserver has it (3.8+)
            logger.warning("cannot restart the forkserver: steps inherit its older environment")
            return pid
        stop()
    multiprocessing.get_context("forkserver").set_forkserver_preload(modules)
    with _environment(PRELOAD_JOB_ENV, job):  # the server copies this process's environment
        server.ensure_running()
    pid = getattr(server, "_forkserver_pid", None)
    if pid is not None:
        _started[pid] = wanted
    return pid


DAGSTER_MAX_CONCURRENT_ENV = "DAGSTER_MULTIPROCESS_EXECUTOR_MAX_CONCURRENT"


def run_workers(run_config: Mapping[str, Any], executor_name: str, step_pods: int = 16) -> int:
    """How many steps of a run execute at once: 1 in process; ``max_concurrent`` of the run
    config, else what the executor would use (Dagster's variable or the CPU count for
    multiprocess; the deployment's ``step_pods``, ``EXOSPHERE_STEP_PODS``, on Kubernetes)."""
    execution = ((run_config.get("execution") or {}).get("config")) or {}
    if executor_name == "k8s":
        return int(execution.get("max_concurrent") or 0) or step_pods
    if executor_name == "in_process" or "in_process" in execution:
        return 1
    multiprocess = execution.get("multiprocess", execution) or {}
    limit = multiprocess.get("max_concurrent") or os.environ.get(DAGSTER_MAX_CONCURRENT_ENV)
    return int(limit or 0) or multiprocessing.cpu_count()


def segment_chunk_size(context: Any, chunk: ChunkPolicy, items: Sequence[Any]) -> int:
    """A step's chunk size for ``items``: the resolved chunk policy's for the workers of this
    run's executor (no more chunks than they run at once buy, times the tier's chunks per
    worker), within the policy's bytes for items this large (a sample, pickled)."""
    step_pods = deployment_of(context).settings.step_pods
    workers = run_workers(context.run_config, context.job_def.executor_def.name, step_pods)
    return chunk.size(len(items), workers, sampled_item_bytes(items))


SIZE_PLACES = 4  # places spread over the items where neighbours are pickled to guess a size
WINDOW_ITEMS = (8, 256)  # neighbours pickled at each place: from 8, doubling up to 256 ...
WINDOW_BYTES = 2 * 2**20  # ... while their pickle stays under this


def sampled_item_bytes(items: Sequence[Any]) -> float:
    """What an item adds to a pickled chunk, from runs of neighbouring items at a few places
    spread over ``items``. A chunk is neighbours: siblings share their ancestors' lineage, and
    pickle stores what they share once, so each run grows (8, 16, ... 256 items) while its
    pickle is small; large items stop it early. 0 when there are no items or they cannot be
    pickled (the counts alone decide then)."""
    if not items:
        return 0.0
    size = counted = 0
    for place in range(SIZE_PLACES):
        start = len(items) * place // SIZE_PLACES
        window, found = WINDOW_ITEMS[0], 0
        while True:
            run = list(items[start : start + window])
            try:
                found = len(pickle.dumps(run, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception:  # noqa: BLE001 - an unpicklable item fails where it is stored
                return 0.0
            if found >= WINDOW_BYTES or window >= WINDOW_ITEMS[1] or len(run) < window:
                break
            window *= 2
        size, counted = size + found, counted + len(run)
    return size / counted


__all__ = [
    "exosphere_executor",
    "ensure_forkserver",
    "run_workers",
    "segment_chunk_size",
    "PRELOAD_MODULE",
]


def executor_for(deployment: Deployment) -> Any:
    """``k8s_job_executor`` when the deployment says ``EXOSPHERE_EXECUTOR=k8s`` (set on the code
    location and, through the chart's includeConfigInLaunchedRuns, on run pods); else Dagster's
    multiprocess/in-process executor with steps forked from a preloaded forkserver by default
    (above)."""
    if not deployment.settings.runs_on_kubernetes:
        return exosphere_executor
    from dagster_k8s import k8s_job_executor

    active_execution.install()  # its step-delegating loop keeps steps as ours does

    return k8s_job_executor

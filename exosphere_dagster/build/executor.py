"""The executor cluster jobs run with by default: Dagster's own multiprocess (or in-process)
executor, whose step processes are forked from a forkserver that already imported Dagster, the
instance's storage, the product and the satellites (``exosphere_dagster.entry.preload``). With
Dagster's default (``spawn``) every step re-imports all of that (about 2 s here); a fork costs
milliseconds (bench/job_execute.py).

It is Dagster's ``multi_or_in_process_executor`` with one more default, so run config still
chooses as usual: ``execution: config: in_process: {}``, ``multiprocess: max_concurrent: 4``,
or ``multiprocess: start_method: spawn: {}`` for a fresh interpreter per step.
``EXOSPHERE_EXECUTOR=k8s`` replaces it with ``k8s_job_executor`` (placement.executor_from_env).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
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

from exosphere_dagster.settings import settings

PRELOAD_MODULE = "exosphere_dagster.entry.preload"
PRELOAD_JOB_ENV = "EXOSPHERE_PRELOAD_JOB"  # set for the forkserver only: the job it builds
DEFAULT_START = {"forkserver": {"preload_modules": [PRELOAD_MODULE]}}
DAGSTER_PRELOAD = "dagster._core.executor.multiprocess"  # Dagster puts it first in every list
logger = logging.getLogger("exosphere")


def _config_schema() -> Field:
    """Dagster's own ``multiprocess``/``in_process`` selector, with forkserver as the default
    start method (so ``multiprocess: {max_concurrent: 4}`` still forks from the preloaded
    server) and ``multiprocess`` the default choice, as in Dagster."""
    choices = dict(multi_or_in_process_executor.config_schema.config_type.fields)
    multiprocess = choices["multiprocess"]
    fields = dict(multiprocess.config_type.fields)
    start = fields["start_method"]
    fields["start_method"] = Field(
        start.config_type,
        is_required=False,
        default_value=DEFAULT_START,
        description="How step processes start. Default: forked from a server that preloaded "
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
        return inner
    executor = ForkserverExecutor(inner, start["forkserver"].get("preload_modules"))
    executor.start(init_context.job)  # now: the server preloads while the run starts up
    return executor


class ForkserverExecutor(Executor):
    """Dagster's multiprocess executor, with a forkserver that matches this process.

    Python keeps one forkserver per process, started with the environment, ``sys.path``, working
    directory and standard streams of the moment it started; its children inherit those, not
    the caller's current ones. A run worker runs one run, so that is the same thing; a process
    that executes several runs (a test session, a script) may have changed them in between (a
    secret in ``os.environ``, a new ``DAGSTER_HOME``), so the server is restarted when they
    differ from what it started with."""

    def __init__(self, inner: Executor, preload: Sequence[str] | None) -> None:
        self._inner = inner
        self._preload = list(preload) if preload is not None else None

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def start(self, job: Any) -> None:
        """Start (or keep) the forkserver for ``job``, a ``ReconstructableJob``."""
        preload = self._preload if self._preload is not None else [job.get_module() or "dagster"]
        ensure_forkserver(preload, serialize_value(job.get_python_origin()))

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        self.start(plan_context.reconstructable_job)
        yield from self._inner.execute(plan_context, execution_plan)


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


def run_workers(run_config: Mapping[str, Any], executor_name: str) -> int:
    """How many steps of a run execute at once: 1 in process; ``max_concurrent`` of the run
    config, else what the executor would use (Dagster's variable or the CPU count for
    multiprocess; ``EXOSPHERE_STEP_PODS`` or 16 step pods on Kubernetes)."""
    execution = ((run_config.get("execution") or {}).get("config")) or {}
    if executor_name == "k8s":
        return int(execution.get("max_concurrent") or 0) or settings().step_pods
    if executor_name == "in_process" or "in_process" in execution:
        return 1
    multiprocess = execution.get("multiprocess", execution) or {}
    limit = multiprocess.get("max_concurrent") or os.environ.get(DAGSTER_MAX_CONCURRENT_ENV)
    return int(limit or 0) or multiprocessing.cpu_count()


__all__ = ["exosphere_executor", "ensure_forkserver", "run_workers", "PRELOAD_MODULE"]

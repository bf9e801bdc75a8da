"""``exosphere code-server``: Dagster's gRPC code server for the code location, rebuilt in
place when the clusters change, so that a reload after one file changed builds that file only.

``dagster api grpc`` builds a code location once per process; Dagster's dev server reloads a
location by starting a new process, which builds and snapshots every cluster again (minutes
with 1,000 files: bench/results/location_reload.md). This server stays up instead:

* Whenever a client (the webserver, the daemon) lists the location's repositories, which every
  reload of the location does first, it checks whether the clusters store or the deployment
  changed since the last build, and if so rebuilds the location in this process. Clusters whose
  resolved plan did not change are given back as they were (translate/built_clusters.py),
  Dagster's job snapshots with them, and the server takes a new id. Dagster's webserver and
  daemon watch a ``grpc_server`` location's id and load it again when it changes: a change the
  watcher of ``exosphere dev`` reports reaches both of them through one rebuild.
* The serialized snapshot of each job is kept (compressed) until its job changes, and the
  repository's until the next rebuild: the webserver and the daemon each ask for all of them
  after every reload.

Runs still start in fresh processes (Dagster's ``StartRun``), which load the cluster they run
from the store. Python cannot rebuild in place what it imported: when satellite or exosphere
code changed on disk, the next load or reload restarts the server (``exec``, same process id and
port), as Dagster would start a new one.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import uuid
import zlib
from typing import Any

from dagster._core.remote_origin import RemoteRepositoryOrigin
from dagster._core.remote_representation.external_data import JobDataSnap, RepositorySnap
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import FuturesAwareThreadPoolExecutor
from dagster._grpc.__generated__ import dagster_api_pb2
from dagster._grpc.server import DagsterApiServer, DagsterGrpcServer
from dagster._serdes import deserialize_value, serialize_value
from dagster._utils.error import serializable_error_info_from_exc_info

from exosphere_dagster import definitions
from exosphere_dagster.entry.devserver import LOCATION_NAME
from exosphere_dagster.resolve.catalog import usable_registry
from exosphere_dagster.resolve.plan_cache import keep_plans_in_memory
from exosphere_dagster.resolve.plan_inputs import source_moved

logger = logging.getLogger("exosphere")
PARENT_POLL_SECONDS = 1.0


class InPlaceApiServer(DagsterApiServer):
    """``DagsterApiServer`` whose location is rebuilt in place when its inputs change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._seen = definitions.location_token()  # before the first build: a change wins
        self._rebuild_lock = threading.Lock()
        self._job_data: dict[tuple[str, str], tuple[Any, bytes]] = {}  # -> (job, zlib'd data)
        self._repository_data: tuple[tuple, bytes] | None = None  # (key, zlib'd snapshot)
        self._previous: Any = None  # the repository the last rebuild replaced (ExternalJob)
        self._deferred: str | None = None  # a restart waiting for runs to end (the reason)
        super().__init__(*args, **kwargs)
        self._loaded = self._loaded_repositories  # kept while a failed rebuild shows its error
        self._moved_at_start = _code_moved()  # then it cannot tell a later change: no restart

    def rebuild_if_changed(self, token: object = None) -> bool:
        """Rebuild the location if the store or the deployment changed since the last build
        (``token``: ``definitions.location_token()``, when the caller has just read it); True
        when it did. A rebuild that fails puts the server in Dagster's error state (the
        webserver shows the error) until a later change rebuilds it. A server whose first load
        failed has nothing to rebuild from: a change starts it again (``exec``)."""
        with self._rebuild_lock:
            token = definitions.location_token() if token is None else token
            if token == self._seen:
                return False
            if self._loaded is None:  # nothing to rebuild from
                self._restart("the clusters or the deployment changed after a failed first load")
                return False
            self._seen = token
            try:
                repository = definitions.rebuilt_location()
            except Exception:
                self._logger.exception("the code location could not be rebuilt")
                self._serializable_load_error = serializable_error_info_from_exc_info(
                    sys.exc_info()
                )
                self._loaded_repositories = None
            else:
                self._previous = self._loaded.definitions_by_name.get(repository.name)
                self._loaded_repositories = self._loaded.update_repo_defs(
                    {repository.name: repository}
                )
                self._serializable_load_error = None
                names = {(repository.name, name) for name in repository.job_names}
                self._job_data = {k: v for k, v in self._job_data.items() if k in names}
                self._logger.info("code location rebuilt in place: %s", definitions.last_rebuild())
            self._server_id = str(uuid.uuid4())  # tells the webserver and daemon to load again
            return self._loaded_repositories is not None

    def restart_if_code_moved(self) -> None:
        """Start this server again (the same process, ``exec``) when satellite or exosphere
        code changed on disk: Python cannot rebuild in place what it imported. Clients lose the
        server for the restart and load the location again when it answers with a new id."""
        if self._moved_at_start is not None:
            return
        reason = _code_moved()
        if reason is not None:
            self._restart(f"code changed ({reason})")

    def _restart(self, why: str) -> None:
        """``exec`` this server again, once the runs it started are over: a run's process and
        its cancellation belong to this process (Dagster's ``CancelExecution``), and a
        restarted server would not know them. Until then it serves what it has. The execution
        lock is held through the ``exec`` (which replaces the process): no run starts between
        the count and it. A server told to stop does not restart."""
        with self._execution_lock:
            if self._stopping():
                return
            running = sum(process.is_alive() for process, _ in self._executions.values())
            if running:
                if why != self._deferred:
                    self._logger.warning(
                        "%s: the code server restarts once its %d run(s) in flight end",
                        why,
                        running,
                    )
                    self._deferred = why
                return
            self._logger.warning("%s: restarting the code server", why)
            for handler in logging.getLogger("dagster").handlers + logging.getLogger().handlers:
                handler.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
            except OSError:  # the interpreter is gone (a venv being reinstalled): keep serving
                self._logger.exception("the code server could not restart; it serves on")
                self._deferred = None

    def _stopping(self) -> bool:
        return (
            self._shutdown_once_executions_finish_event.is_set()
            or self._server_termination_event.is_set()
        )

    def ListRepositories(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's name)
        """Every load of the location starts here: a change found is rebuilt in the background
        (a rebuild of every cluster can outlast the caller's deadline); the clients load the
        location again when the rebuild gives the server its new id."""
        self.restart_if_code_moved()
        if not self._rebuild_lock.locked():  # read outside the lock: a stale token costs at
            token = definitions.location_token()  # most one rebuild more, never a missed one
            if token != self._seen:
                threading.Thread(target=self.rebuild_if_changed, args=(token,), daemon=True).start()
        return super().ListRepositories(request, context)

    def _check_for_orphaned_runs(self) -> None:
        """Dagster's tick that clears ended runs (every half second); a restart that waited for
        them happens here."""
        super()._check_for_orphaned_runs()
        if self._deferred is not None:
            self._restart(self._deferred)  # does nothing while runs are in flight

    def ReloadCode(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Rebuild now if anything changed (what ``exosphere dev``'s watcher asks)."""
        self.restart_if_code_moved()
        self.rebuild_if_changed()
        return dagster_api_pb2.ReloadCodeReply()

    def _get_serialized_external_repository_data(self, request: Any) -> str:
        """The repository's snapshot, made once per server id (the webserver and the daemon
        each ask for it after every reload; at 1,000 clusters it takes seconds to make)."""
        key = (
            self._server_id,
            request.serialized_repository_python_origin,
            request.defer_snapshots,
        )
        kept = self._repository_data
        if kept is not None and kept[0] == key:
            return zlib.decompress(kept[1]).decode()
        try:
            origin = deserialize_value(
                request.serialized_repository_python_origin, RemoteRepositoryOrigin
            )
            snapshot = RepositorySnap.from_def(
                self._get_repo_for_origin(origin), defer_snapshots=request.defer_snapshots
            )
        except Exception:  # Dagster's own error reply, never kept
            return super()._get_serialized_external_repository_data(request)
        data = serialize_value(snapshot)
        self._repository_data = (key, zlib.compress(data.encode(), 1))
        return data

    def ExternalJob(self, request: Any, context: Any) -> Any:  # noqa: N802
        """A job's snapshot, kept serialized until the job changes. A job the last rebuild
        removed is still served from the repository before it: a client that listed the
        location just before the rebuild asks for it, and loads again on the new id."""
        try:
            origin = deserialize_value(request.serialized_repository_origin, RemoteRepositoryOrigin)
            job = self._job(origin, request.job_name)
        except Exception:
            return super().ExternalJob(request, context)  # Dagster's own error reply
        key = (origin.repository_name, request.job_name)
        kept = self._job_data.get(key)
        if kept is not None and kept[0] is job:
            data = zlib.decompress(kept[1]).decode()
        else:
            data = serialize_value(JobDataSnap.from_job_def(job, include_parent_snapshot=True))
            self._job_data[key] = (job, zlib.compress(data.encode(), 1))
        return dagster_api_pb2.ExternalJobReply(serialized_job_data=data)

    def _job(self, origin: RemoteRepositoryOrigin, name: str) -> Any:
        repository = self._get_repo_for_origin(origin)
        previous = self._previous
        if not repository.has_job(name) and previous is not None and previous.has_job(name):
            return previous.get_job(name)
        return repository.get_job(name)


def _code_moved() -> str | None:
    try:
        return source_moved(usable_registry()[0])  # a broken plugin: the others still count
    except Exception as exc:  # a source file it cannot read: the rebuild shows what is wrong
        logger.debug("satellite code not checked: %s", exc)
        return None


def serve(port: int, host: str = "127.0.0.1", parent_pid: int | None = None) -> None:
    """Serve the code location on ``host:port`` until interrupted (or, with ``parent_pid``,
    until that process is gone: ``exosphere dev`` passes its own)."""
    from dagster._utils.interrupts import setup_interrupt_handlers
    from dagster._utils.log import configure_loggers

    # Dagster gives SIGTERM the handler SIGINT has, which a background job inherits as ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    setup_interrupt_handlers()
    configure_loggers()
    keep_plans_in_memory()
    code_logger = logging.getLogger("dagster.code_server")
    termination = threading.Event()
    serving = threading.Event()
    if parent_pid is not None:  # watched from the start: the first build may take minutes
        threading.Thread(
            target=_end_with_parent, args=(parent_pid, termination, serving), daemon=True
        ).start()
    pool = FuturesAwareThreadPoolExecutor()
    servicer = InPlaceApiServer(
        server_termination_event=termination,
        logger=code_logger,
        server_threadpool_executor=pool,
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name=definitions.__name__,
            attribute="defs",
            working_directory=os.getcwd(),
        ),
        location_name=LOCATION_NAME,
        lazy_load_user_code=True,  # a first load that fails is shown, as under `dagster dev`
    )
    server = DagsterGrpcServer(
        server_termination_event=termination,
        dagster_api_servicer=servicer,
        port=port,
        host=host,
        logger=code_logger,
        threadpool_executor=pool,
    )
    code_logger.info("exosphere code server for %s on %s:%s", LOCATION_NAME, host, port)
    serving.set()
    try:
        server.serve()
    except KeyboardInterrupt:  # SIGINT or SIGTERM
        code_logger.info("exosphere code server interrupted: stopping")


def _end_with_parent(
    parent_pid: int, termination: threading.Event, serving: threading.Event
) -> None:
    while not termination.wait(PARENT_POLL_SECONDS):
        if os.getppid() != parent_pid:
            logger.warning("the process that started this code server is gone: stopping")
            if not serving.is_set():
                os._exit(1)  # still building the location: nothing to shut down cleanly
            termination.set()

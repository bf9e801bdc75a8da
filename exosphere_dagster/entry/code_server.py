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
from the store. Satellite code (plugin modules) is imported once per server process: after
changing a satellite's Python code, restart the server (``exosphere dev`` included).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
import zlib
from typing import Any

from dagster._core.remote_origin import RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import FuturesAwareThreadPoolExecutor
from dagster._grpc.__generated__ import dagster_api_pb2
from dagster._grpc.server import DagsterApiServer, DagsterGrpcServer
from dagster._serdes import deserialize_value

from exosphere_dagster import definitions
from exosphere_dagster.entry.devserver import LOCATION_NAME
from exosphere_dagster.resolve.plan_cache import keep_plans_in_memory

logger = logging.getLogger("exosphere")
PARENT_POLL_SECONDS = 1.0


class InPlaceApiServer(DagsterApiServer):
    """``DagsterApiServer`` whose location is rebuilt in place when its inputs change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._seen = definitions.location_token()  # before the first build: a change wins
        self._rebuild_lock = threading.Lock()
        self._job_data: dict[tuple[str, str], tuple[Any, bytes]] = {}  # -> (job, zlib'd data)
        self._repository_data: tuple[tuple, bytes] | None = None  # (key, zlib'd snapshot)
        super().__init__(*args, **kwargs)

    def rebuild_if_changed(self) -> bool:
        """Rebuild the location if the store or the deployment changed since the last build;
        True when it did. A rebuild that fails keeps the location as it was (and logs why)."""
        with self._rebuild_lock:
            token = definitions.location_token()
            if token == self._seen or self._loaded_repositories is None:
                return False
            try:
                repository = definitions.rebuilt_location()
            except Exception:
                self._logger.exception("the location could not be rebuilt; it is kept as it was")
                return False
            self._seen = token
            self._loaded_repositories = self._loaded_repositories.update_repo_defs(
                {repository.name: repository}
            )
            names = {(repository.name, name) for name in repository.job_names}
            self._job_data = {k: v for k, v in self._job_data.items() if k in names}
            self._server_id = str(uuid.uuid4())  # tells the webserver and daemon to load again
            self._logger.info("code location rebuilt in place: %s", definitions.last_rebuild())
            return True

    def ListRepositories(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's name)
        self.rebuild_if_changed()
        return super().ListRepositories(request, context)

    def ReloadCode(self, request: Any, context: Any) -> Any:  # noqa: N802
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
        data = super()._get_serialized_external_repository_data(request)
        self._repository_data = (key, zlib.compress(data.encode(), 1))
        return data

    def ExternalJob(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            origin = deserialize_value(request.serialized_repository_origin, RemoteRepositoryOrigin)
            key = (origin.repository_name, request.job_name)
            job = self._get_repo_for_origin(origin).get_job(request.job_name)
        except Exception:
            return super().ExternalJob(request, context)  # Dagster's own error reply
        kept = self._job_data.get(key)
        if kept is not None and kept[0] is job:
            data = zlib.decompress(kept[1]).decode()
            return dagster_api_pb2.ExternalJobReply(serialized_job_data=data)
        reply = super().ExternalJob(request, context)
        if reply.serialized_job_data:
            self._job_data[key] = (job, zlib.compress(reply.serialized_job_data.encode(), 1))
        return reply


def serve(port: int, host: str = "127.0.0.1", parent_pid: int | None = None) -> None:
    """Serve the code location on ``host:port`` until interrupted (or, with ``parent_pid``,
    until that process is gone: ``exosphere dev`` passes its own)."""
    from dagster._utils.interrupts import setup_interrupt_handlers
    from dagster._utils.log import configure_loggers

    setup_interrupt_handlers()
    configure_loggers()
    keep_plans_in_memory()
    code_logger = logging.getLogger("dagster.code_server")
    termination = threading.Event()
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
    )
    server = DagsterGrpcServer(
        server_termination_event=termination,
        dagster_api_servicer=servicer,
        port=port,
        host=host,
        logger=code_logger,
        threadpool_executor=pool,
    )
    if parent_pid is not None:
        threading.Thread(
            target=_end_with_parent, args=(parent_pid, termination), daemon=True
        ).start()
    code_logger.info("exosphere code server for %s on %s:%s", LOCATION_NAME, host, port)
    server.serve()


def _end_with_parent(parent_pid: int, termination: threading.Event) -> None:
    while not termination.wait(PARENT_POLL_SECONDS):
        if os.getppid() != parent_pid:
            logger.warning("the process that started this code server is gone: stopping")
            termination.set()

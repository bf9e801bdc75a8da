"""``exosphere dev``: ``dg dev`` on a watched clusters store (a folder or an S3 prefix),
reloading the code location itself whenever a cluster file is added, changed or removed.

The code location is served by ``exosphere code-server`` (code_server.py), which rebuilds it in
place, so a reload after one file changed builds that file's cluster only; ``dg dev -w`` starts
Dagster's own webserver and daemon on a workspace that names that server (``dagster dev`` is
superseded by ``dg dev`` in Dagster 1.13 and says so on every start); no dg project is needed.

The watch is a poll of the store's change token (a folder's file times and sizes, an S3
listing's ETags); on a change it asks the code server to reload, and the webserver and daemon
load the location again when the server's id changes. ``exosphere clusters watch`` runs the
same loop beside any webserver, asking the webserver to reload instead."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._grpc.client import DagsterGrpcClient

from exosphere_dagster.entry.clusters.store import ClusterStore, FolderStore, StoreError, open_store

logger = logging.getLogger("exosphere")
LOCATION_NAME = "exosphere_dagster.definitions"
RELOAD_TIMEOUT_S = 3600  # a rebuild of every cluster (a changed deployment) may take minutes
# The dagster.yaml ``exosphere dev`` writes into a ``$DAGSTER_HOME`` that has none (an existing one
# is the user's and is left alone); docs/deployment.md "Launch latency" says why.
DEV_INSTANCE = """\
# Written by `exosphere dev` (exosphere_dagster/entry/devserver.py); edit freely, it is kept.
# Dagster's default queue looks for queued runs every 5 s and launches them one at a time: on one
# machine that wait was most of a small run's launch from the UI (bench/results/ui_launch.md).
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1  # the smallest Dagster takes (whole seconds)
    dequeue_use_threads: true  # the daemon goes on while a code server spawns a run worker
    dequeue_num_workers: 4
telemetry:
  enabled: false  # no prompt on first use
"""
# Dagster's webserver and daemon load the location from exosphere's code server (code_server.py),
# which rebuilds it in place; they load it again when the server's id changes.
WORKSPACE = """\
load_from:
  - grpc_server:
      host: 127.0.0.1
      port: {port}
      location_name: {name}
"""
RELOAD_MUTATION = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
}
"""


def reload_location(
    port: int, host: str = "127.0.0.1", *, url: str | None = None, location: str = LOCATION_NAME
) -> bool:
    try:
        response = httpx.post(
            f"{url or f'http://{host}:{port}'}/graphql",
            json={"query": RELOAD_MUTATION, "variables": {"name": location}},
            timeout=60,
        )
        return response.status_code == 200 and "errors" not in response.json()
    except httpx.HTTPError as exc:
        logger.warning("could not reload the code location: %s", exc)
        return False


def watch(
    store: ClusterStore | Path,
    port: int,
    stop: threading.Event,
    interval: float = 1.0,
    *,
    url: str | None = None,
    location: str = LOCATION_NAME,
    announce: str | None = None,
    reload: Callable[[], bool] | None = None,
) -> None:
    """Poll the store; on any change ask the webserver to reload the code location (or call
    ``reload``). A store that cannot be listed for a while is reported and polled again
    (nothing is reloaded). ``announce`` is printed once the first listing is taken: changes from
    then on count."""
    store = FolderStore(store) if isinstance(store, Path) else store
    last = _token(store)
    if announce:
        print(announce, flush=True)
    while not stop.wait(interval):
        current = _token(store)
        if current is not None and current != last:
            last = current
            ok = reload() if reload else reload_location(port, url=url, location=location)
            print(
                f"exosphere: {store.url} changed; code location reload {'done' if ok else 'failed'}",
                flush=True,
            )


def _token(store: ClusterStore) -> object:
    try:
        return store.token()
    except StoreError as exc:
        logger.warning("cannot list the clusters store: %s", exc)
        return None


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def serve(folder: str | Path, port: int) -> int:
    """``folder``: a folder (created if missing) or an ``s3://bucket/prefix``. Runs until
    interrupted, or until the dev server or the code server stops (its exit status)."""
    store = open_store(folder)
    if isinstance(store, FolderStore):
        store.folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EXOSPHERE_CLUSTERS_DIR": store.url}
    print(f"exosphere: watching {store.url}; UI at http://127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    started: list[subprocess.Popen] = []  # the code server, then dg dev
    home = Path(tempfile.mkdtemp(prefix="exosphere-dev-"))

    def shutdown(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        code, code_port = _start_code_server(env, stop, started)
        if code.poll() is not None or stop.is_set():
            return code.returncode or 0
        workspace = home / "workspace.yaml"
        workspace.write_text(WORKSPACE.format(port=code_port, name=LOCATION_NAME))
        command = [sys.executable, "-m", "dagster_dg_cli.cli", "dev", "-w", str(workspace)]
        command += ["-h", "127.0.0.1", "-p", str(port)]
        # dagster dev treats SIGTERM like SIGINT: make sure neither is inherited as ignored (as it
        # is when this command runs as a background job), or shutdown would hang.
        proc = subprocess.Popen(
            command, env=env, start_new_session=True, preexec_fn=_default_signals
        )
        started.append(proc)
        interval = 1.0 if isinstance(store, FolderStore) else 2.0  # an S3 listing is a request
        watcher = threading.Thread(
            target=watch,
            args=(store, port, stop, interval),
            kwargs={"reload": lambda: _reload_code_server(code_port)},
            daemon=True,
        )
        watcher.start()
        while not stop.wait(0.5):
            if proc.poll() is not None:
                return proc.returncode
            if code.poll() is not None:
                print(f"exosphere: the code server stopped (exit {code.returncode})", flush=True)
                return code.returncode or 1
        return 0
    finally:
        stop.set()
        for started_proc in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started_proc.pid, signal.SIGTERM)
            _stop(started_proc)
        shutil.rmtree(home, ignore_errors=True)


def _stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """Wait ``grace`` seconds for ``proc``'s group to end, then kill it."""
    deadline = time.time() + grace
    while proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _start_code_server(
    env: dict[str, str], stop: threading.Event, started: list[subprocess.Popen]
) -> tuple[subprocess.Popen, int]:
    """``exosphere code-server`` (code_server.py) and its port, once it answers (it has built
    the location by then), appended to ``started``; it may have ended instead (it could not
    start), or ``stop`` be set while it was building."""
    port = free_port()
    command = [sys.executable, "-m", "exosphere_dagster.entry.cli", "code-server"]
    command += ["--port", str(port), "--parent-pid", str(os.getpid())]
    code = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_default_signals)
    started.append(code)
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    while code.poll() is None and not stop.is_set():
        try:
            client.ping("")
            break
        except DagsterUserCodeUnreachableError:
            stop.wait(0.2)
    return code, port


def _reload_code_server(port: int) -> bool:
    """Ask the code server to rebuild what changed. The webserver and the daemon see its new id
    within a second (Dagster's watch of a ``grpc_server`` location) and load it again."""
    try:
        DagsterGrpcClient(port=port, host="127.0.0.1").reload_code(timeout=RELOAD_TIMEOUT_S)
        return True
    except DagsterUserCodeUnreachableError as exc:
        logger.warning("could not reload the code location: %s", exc)
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no one listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""``exosphere dev``: ``dagster dev`` on a watched clusters store (a folder or an S3 prefix),
reloading the code location itself whenever a cluster file is added, changed or removed."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from exosphere_dagster.cluster_store import (
    CLUSTERS_DIR_ENV,
    STORE_TOKEN_KEY,
    ClusterStore,
    FolderStore,
    StoreError,
    store_from_url,
)
from exosphere_dagster.graphql_api import ApiError, DagsterApi, ServerUnreachable

logger = logging.getLogger("exosphere")
LOCATION_NAME = "exosphere_dagster.definitions"
POLL_ENV = "EXOSPHERE_STORE_POLL_SECONDS"  # how often the store is checked (folder 1 s, S3 5 s)


def reload_location(port: int, host: str = "127.0.0.1") -> bool:
    try:
        DagsterApi(f"http://{host}:{port}", timeout=120).reload(LOCATION_NAME)
        return True
    except (ApiError, ServerUnreachable) as exc:
        logger.warning("could not reload the code location: %s", exc)
        return False


def loaded_token(port: int, host: str = "127.0.0.1") -> str | None:
    """The store token the running location published (None when it cannot tell)."""
    try:
        found = DagsterApi(f"http://{host}:{port}", timeout=30).locations()
    except (ApiError, ServerUnreachable):
        return None
    return next(
        (loc.store.get(STORE_TOKEN_KEY) for loc in found if loc.name == LOCATION_NAME), None
    )


def current_token(store: ClusterStore) -> str | None:
    try:
        return store.change_token()
    except StoreError as exc:
        logger.warning("cannot read the clusters store: %s", exc)
        return None


def watch(store: ClusterStore, port: int, stop: threading.Event, interval: float = 1.0) -> None:
    """Poll the store; on a change the running location has not loaded yet (``exosphere
    clusters apply`` reloads it itself), ask the webserver to reload the code location."""
    last = current_token(store)
    while not stop.wait(interval):
        current = current_token(store)
        if current is None or current == last:
            continue
        last = current
        if loaded_token(port) == current:
            continue
        ok = reload_location(port)
        print(
            f"exosphere: {store.url} changed; code location reload {'done' if ok else 'failed'}",
            flush=True,
        )


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def serve(source: str | Path, port: int) -> int:
    """``dagster dev`` on the store ``source`` (a folder, created if missing, or s3://...)."""
    store = store_from_url(source)
    if isinstance(store, FolderStore):
        store = FolderStore(store.folder.resolve())
        store.folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, CLUSTERS_DIR_ENV: store.url}
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        LOCATION_NAME,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    print(f"exosphere: watching {store.url}; UI at http://127.0.0.1:{port}", flush=True)
    # dagster dev treats SIGTERM like SIGINT: make sure neither is inherited as ignored (as it is
    # when this command runs as a background job), or shutdown would hang.
    proc = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_default_signals)
    stop = threading.Event()
    interval = float(os.environ.get(POLL_ENV) or (1 if isinstance(store, FolderStore) else 5))
    watcher = threading.Thread(target=watch, args=(store, port, stop, interval), daemon=True)
    watcher.start()

    def shutdown(signum: int, frame: object) -> None:
        stop.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        return proc.wait()
    finally:
        stop.set()
        deadline = time.time() + 10
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

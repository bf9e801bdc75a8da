"""``exosphere dev``: ``dagster dev`` on a watched folder, reloading the code location itself
whenever a cluster file is added, changed or removed."""

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

import httpx

from yaml_loader.load import YAML_SUFFIXES

logger = logging.getLogger("exosphere")
LOCATION_NAME = "exosphere_dagster.definitions"
RELOAD_MUTATION = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
}
"""


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """What the folder's cluster files look like now: path -> (mtime_ns, size)."""
    state = {}
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.suffix in YAML_SUFFIXES and path.is_file():
                stat = path.stat()
                state[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return state


def reload_location(port: int, host: str = "127.0.0.1") -> bool:
    try:
        response = httpx.post(
            f"http://{host}:{port}/graphql",
            json={"query": RELOAD_MUTATION, "variables": {"name": LOCATION_NAME}},
            timeout=30,
        )
        return response.status_code == 200 and "errors" not in response.json()
    except httpx.HTTPError as exc:
        logger.warning("could not reload the code location: %s", exc)
        return False


def watch(folder: Path, port: int, stop: threading.Event, interval: float = 1.0) -> None:
    """Poll the folder; on any change ask the webserver to reload the code location."""
    last = snapshot(folder)
    while not stop.wait(interval):
        current = snapshot(folder)
        if current != last:
            last = current
            ok = reload_location(port)
            print(
                f"exosphere: {folder} changed; code location reload {'done' if ok else 'failed'}",
                flush=True,
            )


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def serve(folder: Path, port: int) -> int:
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EXOSPHERE_CLUSTERS_DIR": str(folder)}
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
    print(f"exosphere: watching {folder}; UI at http://127.0.0.1:{port}", flush=True)
    # dagster dev treats SIGTERM like SIGINT: make sure neither is inherited as ignored (as it is
    # when this command runs as a background job), or shutdown would hang.
    proc = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_default_signals)
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(folder, port, stop), daemon=True)
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

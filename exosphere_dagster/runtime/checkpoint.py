"""Per-item checkpoints: a step retry or a re-execution redoes only the items that did not succeed.

A checkpoint log holds the finished items of one (root run, op, chunk). Each finished item is
written as soon as it finishes, so a process or pod killed mid-chunk keeps its finished items.
Where the logs live follows the instance (``checkpoint_store_for``), so that every pod of a
deployment sees the same checkpoints:

* ``EXOSPHERE_CHECKPOINT_S3_URL=s3://bucket/prefix``: objects in S3 or any S3-compatible store
  (``checkpoint_s3``);
* ``EXOSPHERE_CHECKPOINT_DIR``: local files in that folder (a volume every pod mounts);
* an instance whose run storage is Postgres: a table in that database (``checkpoint_postgres``);
* otherwise local files under the instance's storage folder (one machine: ``dagster dev``).

A log also keeps the step's durable state (``CheckpointState``: a satellite's key/value
store, e.g. the id of a provider batch it waits for) as frames under reserved ids; ``load``
leaves them out, so they never count as finished items.

Checkpoints are kept for ``EXOSPHERE_CHECKPOINT_RETENTION_DAYS`` (14) after a run's newest
write, then deleted by the project itself on every backend (``expire``): each step process that
opens the store starts a background pass, at most once per ``EXOSPHERE_CHECKPOINT_PRUNE_HOURS``.

The instance is duck-typed: this package does not import Dagster. The settings come from the
:class:`Deployment` the caller passes in.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from exosphere_dagster.resolve.deployment import Deployment

logger = logging.getLogger("exosphere")
SUFFIX = ".ckpt"
STATE_PREFIX = "exosphere:state/"  # item ids never hold ':' or '/' (items.child_id)


class CheckpointLog(Protocol):
    """The finished items of one chunk of one op in one run (root run id)."""

    def load(self) -> dict[str, Any]:
        """item id -> the outputs recorded for it."""
        ...

    def record(self, item_id: str, outputs: Any) -> None:
        """Keep one finished item (called once per item, as it finishes)."""
        ...

    def load_state(self) -> dict[str, Any]:
        """The step's state: key -> the value last put (see :class:`CheckpointState`)."""
        ...

    def record_state(self, key: str, value: Any) -> None:
        """Keep one state value; durable when this returns."""
        ...

    def close(self) -> None:
        """Make every recorded item durable and release what the log holds."""
        ...


class CheckpointBackend(Protocol):
    """Where checkpoint logs live: local files, a Postgres table or S3 objects."""

    def log_for(self, root_run_id: str, op_name: str, chunk_key: str) -> CheckpointLog: ...

    def logs(self, root_run_id: str, op_name: str) -> list[CheckpointLog]:
        """Every chunk's log that ``op_name`` wrote in the run (for the SLA-breach report)."""
        ...

    def prune(self, cutoff: float) -> list[str]:
        """Delete every root run whose newest checkpoint was written before ``cutoff`` (epoch
        seconds); return their ids."""
        ...


def safe_chunk(chunk_key: str) -> str:
    """A chunk key usable as a file or object name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", chunk_key) or "chunk"


def frame(item_id: str, outputs: Any) -> bytes:
    """One finished item as bytes: the unit every backend stores."""
    return pickle.dumps((item_id, outputs), protocol=pickle.HIGHEST_PROTOCOL)


def read_frames(fh: IO[bytes]) -> Iterator[tuple[str, Any]]:
    """The frames of a file or object, stopping at a torn last frame (killed mid-write)."""
    while True:
        try:
            item_id, outputs = pickle.load(fh)
        except (EOFError, pickle.UnpicklingError, ValueError, AttributeError):
            return
        yield item_id, outputs


def read_frames_from(data: bytes) -> Iterator[tuple[str, Any]]:
    return read_frames(io.BytesIO(data))


class FramedLog:
    """What every backend shares: a log is a mapping of frames (item id or ``STATE_PREFIX`` +
    key -> value); finished items and step state are the two views of it. A backend supplies
    ``_frames()`` and ``record()``."""

    def _frames(self) -> dict[str, Any]:
        raise NotImplementedError

    def record(self, item_id: str, outputs: Any) -> None:
        raise NotImplementedError

    def load(self) -> dict[str, Any]:
        """The finished items (state frames left out)."""
        return {k: v for k, v in self._frames().items() if not k.startswith(STATE_PREFIX)}

    def load_state(self) -> dict[str, Any]:
        """The step state, keys without their prefix."""
        frames = self._frames()
        return {
            k.removeprefix(STATE_PREFIX): v for k, v in frames.items() if k.startswith(STATE_PREFIX)
        }

    def record_state(self, key: str, value: Any) -> None:
        self.record(STATE_PREFIX + key, value)


class CheckpointState:
    """A step's durable key/value state (``satellite_ops.context.StepState``), kept in its
    chunk's checkpoint log: whatever runs the chunk next (a step retry, a re-execution, which
    shares the root run's logs, a new pod) reads it back. Read once, on first use."""

    def __init__(self, log: CheckpointLog) -> None:
        self.log = log
        self._values: dict[str, Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        if self._values is None:
            self._values = self.log.load_state()
        return self._values.get(key, default)

    def put(self, key: str, value: Any) -> None:
        self.log.record_state(key, value)
        if self._values is not None:
            self._values[key] = value


class FileCheckpointLog(FramedLog):
    """One append-only file per chunk; each item one pickle frame, flushed at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def _frames(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        with self.path.open("rb") as fh:
            return dict(read_frames(fh))

    def record(self, item_id: str, outputs: Any) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        self._fh.write(frame(item_id, outputs))
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class CheckpointStore:
    """Checkpoint logs in local files: ``base_dir/<root run id>/<op>/<chunk>.ckpt``."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(base_dir)

    def log_for(self, root_run_id: str, op_name: str, chunk_key: str) -> FileCheckpointLog:
        return FileCheckpointLog(
            self.base_dir / root_run_id / op_name / f"{safe_chunk(chunk_key)}{SUFFIX}"
        )

    def logs(self, root_run_id: str, op_name: str) -> list[CheckpointLog]:
        folder = self.base_dir / root_run_id / op_name
        return [FileCheckpointLog(path) for path in sorted(folder.glob(f"*{SUFFIX}"))]

    def prune(self, cutoff: float) -> list[str]:
        removed = []
        for run in sorted(self.base_dir.iterdir()) if self.base_dir.is_dir() else ():
            times = [f.stat().st_mtime for f in run.rglob("*") if f.is_file()]
            if run.is_dir() and max(times, default=0.0) < cutoff:
                shutil.rmtree(run, ignore_errors=True)
                removed.append(run.name)
        return removed

    def __repr__(self) -> str:
        return f"local files under {self.base_dir}"


def postgres_url_of(instance: Any) -> str | None:
    """The Postgres URL of the instance's run storage (dagster-postgres), or None."""
    storage = getattr(instance, "run_storage", None)
    url = getattr(storage, "postgres_url", None)
    return url if isinstance(url, str) and url.startswith("postgres") else None


def checkpoint_store_for(instance: Any, deployment: Deployment) -> CheckpointBackend:
    """The checkpoint store every step of ``instance`` uses (see the module docstring for the
    order). Every process of a run must see the same store: a step pod's local storage dies
    with the pod, so a deployment uses the instance's Postgres database or S3."""
    config = deployment.settings
    store = _store_for(instance, deployment)
    expire_in_background(store, config.checkpoint_retention_days, config.checkpoint_prune_hours)
    return store


def _store_for(instance: Any, deployment: Deployment) -> CheckpointBackend:
    config = deployment.settings
    if config.checkpoint_s3_url:
        from exosphere_dagster.runtime.checkpoint_s3 import S3CheckpointStore

        endpoint = config.checkpoint_s3_endpoint_url or deployment.s3_endpoint_url
        return S3CheckpointStore.from_url(config.checkpoint_s3_url, endpoint)
    if config.checkpoint_dir:
        return CheckpointStore(config.checkpoint_dir)
    if pg_url := postgres_url_of(instance):
        from exosphere_dagster.runtime.checkpoint_postgres import PostgresCheckpointStore

        return PostgresCheckpointStore(pg_url)
    return CheckpointStore(os.path.join(instance.storage_directory(), "exosphere_checkpoints"))


# -- retention -------------------------------------------------------------------------------
_LAST_PRUNE: dict[str, tuple[float, threading.Thread]] = {}  # store -> (monotonic time, thread)
_PRUNE_LOCK = threading.Lock()


def expire(store: CheckpointBackend, days: float, now: float | None = None) -> list[str]:
    """Delete the checkpoints of every root run untouched for ``days`` (the deployment's
    ``checkpoint_retention_days``; 0 keeps them forever); the ids of the runs removed. A run
    re-executed within the window keeps all its checkpoints: its newest write decides."""
    if days <= 0:
        return []
    removed = store.prune((time.time() if now is None else now) - days * 86400)
    if removed:
        logger.info("deleted the checkpoints of %d expired run(s) from %r", len(removed), store)
    return removed


def expire_in_background(
    store: CheckpointBackend, days: float, prune_hours: float
) -> threading.Thread | None:
    """Start :func:`expire` in a daemon thread, at most once per ``prune_hours`` per store and
    process: every step process opens the store, so the project's own steps keep it trimmed,
    and a step never waits for it. The thread started, or None."""
    if days <= 0:
        return None
    key = repr(store)
    with _PRUNE_LOCK:
        last = _LAST_PRUNE.get(key)
        if last is not None and time.monotonic() - last[0] < prune_hours * 3600:
            return None
        thread = threading.Thread(target=_expire_quietly, args=(store, days), daemon=True)
        _LAST_PRUNE[key] = (time.monotonic(), thread)
    thread.start()
    return thread


def _expire_quietly(store: CheckpointBackend, days: float) -> None:
    try:
        expire(store, days)
    except Exception:  # noqa: BLE001 - retention must never fail a step
        logger.warning("could not delete expired checkpoints from %r", store, exc_info=True)

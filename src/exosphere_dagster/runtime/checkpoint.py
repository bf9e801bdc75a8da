"""Per-item checkpoints: a step retry or a re-execution redoes only the items that did not succeed.

One append-only file per (root run, op, chunk). Each finished item appends one pickle frame,
flushed at once, so a process killed mid-chunk leaves every finished item on disk; a torn
last frame (killed mid-write) is ignored on reading.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any


class CheckpointLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def load(self) -> dict[str, Any]:
        """item id -> the outputs recorded for it."""
        done: dict[str, Any] = {}
        if not self.path.exists():
            return done
        with self.path.open("rb") as fh:
            while True:
                try:
                    item_id, outputs = pickle.load(fh)
                except (EOFError, pickle.UnpicklingError, ValueError, AttributeError):
                    break
                done[item_id] = outputs
        return done

    def record(self, item_id: str, outputs: Any) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        self._fh.write(pickle.dumps((item_id, outputs), protocol=pickle.HIGHEST_PROTOCOL))
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class CheckpointStore:
    """Checkpoint logs under ``base_dir/<root run id>/<op>/<chunk>.ckpt``."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(base_dir)

    def log_for(self, root_run_id: str, op_name: str, chunk_key: str) -> CheckpointLog:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", chunk_key) or "chunk"
        return CheckpointLog(self.base_dir / root_run_id / op_name / f"{safe}.ckpt")


def checkpoint_store_for(instance: Any) -> CheckpointStore:
    """The checkpoint store a step of ``instance`` uses: ``EXOSPHERE_CHECKPOINT_DIR`` or a folder
    under the instance's local storage. (Seam for deployment stores; see issue 15.7.)"""
    return CheckpointStore(
        os.environ.get("EXOSPHERE_CHECKPOINT_DIR")
        or os.path.join(instance.storage_directory(), "exosphere_checkpoints")
    )

"""Planned cluster files kept on disk, so that a new code server plans only the files that
changed (issue 24: a folder of 1,000 files reloads at the cost of the changed one).

An entry holds what planning one YAML file gave: its ``ClusterPlan``, or its ``ConfigError``
list (with file:line:col). Its key is the sha256 of the planning fingerprint (plan_inputs.py:
versions, our source, every satellite), the file's path as loaded (plans and errors carry it)
and the file's bytes. Python cluster files are code and never cached; resolving is not cached
either (it costs less than reading an entry back; docs/decisions.md).

Entries are written aside and renamed into place; an entry that cannot be read or unpickled is
a miss, and one that cannot be written is skipped: the cache never fails a load. The folder is
kept under ``EXOSPHERE_PLAN_CACHE_MAX_MB`` by deleting the least recently used entries.
Settings and where the folder is: docs/deployment.md ("The plan cache").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.plan_inputs import fingerprint
from satellite_ops.registry import SatelliteRegistry
from yaml_loader import ClusterPlan, ConfigError, ConfigErrors, load, load_text, plan
from yaml_loader.source import MAX_FILE_BYTES

logger = logging.getLogger("exosphere")
SUFFIX = ".plan"
TEMP_PREFIX = ".writing-"
STALE_TEMP_SECONDS = 3600  # a temp file this old was left by a process that died mid-write


def cache_folder(deployment: Deployment, dagster_home: str | None) -> Path:
    """``EXOSPHERE_PLAN_CACHE_DIR``, else ``$DAGSTER_HOME/exosphere/plans``, else the user's
    cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``)/exosphere-dagster/plans."""
    settings = deployment.settings
    if settings.plan_cache_dir is not None:
        return settings.plan_cache_dir
    if dagster_home:
        return Path(dagster_home) / "exosphere" / "plans"
    user_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(user_cache) / "exosphere-dagster" / "plans"


def open_plan_cache(deployment: Deployment, registry: SatelliteRegistry) -> PlanCache | None:
    """The cache the settings ask for, for plans made with ``registry``; ``None`` when it is
    turned off, when the code running may not be the code on disk (plan_inputs.py), or for a
    lookup other than a ``SatelliteRegistry`` (nothing to fingerprint it by)."""
    settings = deployment.settings
    if not settings.plan_cache or not isinstance(registry, SatelliteRegistry):
        return None
    key = fingerprint(registry)
    if key is None:  # plan_inputs logged why
        return None
    folder = cache_folder(deployment, os.environ.get("DAGSTER_HOME"))
    return PlanCache(folder, key, registry, int(settings.plan_cache_max_mb * 1024 * 1024))


@dataclass
class PlanCache:
    """Plans of YAML cluster files under ``folder``, for one planning fingerprint."""

    folder: Path
    fingerprint: str
    registry: SatelliteRegistry
    max_bytes: int
    hits: int = 0
    misses: int = 0
    used: dict[str, ClusterPlan | list[ConfigError]] = field(default_factory=dict)

    def planned(self, path: Path) -> ClusterPlan:
        """``plan(load(path), registry)``, read back when this file was planned before under
        the same fingerprint; raises the file's ConfigErrors like planning does."""
        data = _small_file_bytes(path)
        if data is None:  # unreadable or too large: planning reports it, nothing is kept
            return plan(load(path), self.registry)
        key = self._key(path, data)
        found = _REMEMBERED.get(key)
        if found is None:
            found = self._read(key)
        if isinstance(found, ClusterPlan):
            self.hits += 1
            self.used[key] = found
            return found
        if found is not None:
            self.hits += 1
            self.used[key] = found
            raise ConfigErrors(list(found))
        self.misses += 1
        try:
            planned = self._plan(path, data)
        except ConfigErrors as exc:
            self._keep(path, key, exc.errors)
            self.used[key] = list(exc.errors)
            raise
        self._keep(path, key, planned)
        self.used[key] = planned
        return planned

    def remember(self) -> None:
        """In a process that keeps plans in memory (``keep_plans_in_memory``), keep this
        load's entries for the next load, and only them."""
        if _IN_MEMORY.is_set():
            _REMEMBERED.clear()
            _REMEMBERED.update(self.used)

    def _plan(self, path: Path, data: bytes) -> ClusterPlan:
        """The plan of the bytes the entry is keyed by (not of a second read of the file)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # the loader's own located error for it
            return plan(load(path), self.registry)
        return plan(load_text(text, str(path)), self.registry)

    def prune(self) -> None:
        """Delete the least recently used entries beyond ``max_bytes`` (only after writes)."""
        if not self.misses:
            return
        entries, total, now = [], 0, time.time()
        with contextlib.suppress(OSError), os.scandir(self.folder) as found:
            for entry in found:
                with contextlib.suppress(OSError):
                    stat = entry.stat()
                    if entry.name.startswith(TEMP_PREFIX):
                        if now - stat.st_mtime > STALE_TEMP_SECONDS:
                            os.unlink(entry.path)
                    elif entry.name.endswith(SUFFIX):
                        entries.append((stat.st_mtime, stat.st_size, entry.path))
                        total += stat.st_size
        for _, size, file in sorted(entries):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(file)
                total -= size

    def _key(self, path: Path, data: bytes) -> str:
        digest = hashlib.sha256(self.fingerprint.encode())
        digest.update(b"\0" + str(path).encode("utf-8", "surrogateescape") + b"\0")
        digest.update(data)
        return digest.hexdigest()

    def _entry(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def _read(self, key: str) -> ClusterPlan | list[ConfigError] | None:
        """The entry's plan or errors; ``None`` (a miss) when absent, unreadable or not ours.
        A hit's modification time is renewed: pruning deletes the least recently used."""
        entry = self._entry(key)
        try:
            stored_key, value = pickle.loads(entry.read_bytes())
        except FileNotFoundError:
            return None
        except Exception as exc:  # truncated, corrupt, from another format: a miss
            logger.debug("plan cache: unreadable entry %s (%s)", entry, exc)
            with contextlib.suppress(OSError):
                entry.unlink()
            return None
        if stored_key != key or not _is_result(value):
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)
        return value

    def _keep(self, path: Path, key: str, value: ClusterPlan | list[ConfigError]) -> None:
        """Write the entry aside, then rename it into place. ``value`` is what the bytes the
        key holds planned to (``_plan``), whatever the file holds by now."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temp = tempfile.mkstemp(dir=self.folder, prefix=TEMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as out:
                    pickle.dump((key, value), out, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(temp, self._entry(key))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
            logger.debug("plan cache: cannot keep %s in %s (%s)", path, self.folder, exc)


# The last load's entries, by key, in a process that loads the same folder again and again: a
# plan is frozen, so the next load may share it.
_REMEMBERED: dict[str, ClusterPlan | list[ConfigError]] = {}
_IN_MEMORY = threading.Event()  # set by keep_plans_in_memory()


def keep_plans_in_memory() -> None:
    """This process rebuilds one location again and again (a code server rebuilding in
    place: entry/code_server.py): each load keeps its plans in memory for the next, so an
    unchanged file's plan is not read back from disk. Entries are still checked by their key
    (the file's bytes, path and the planning fingerprint)."""
    _IN_MEMORY.set()


def _small_file_bytes(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _is_result(value: object) -> bool:
    if isinstance(value, ClusterPlan):
        return True
    return (
        isinstance(value, list) and bool(value) and all(isinstance(e, ConfigError) for e in value)
    )

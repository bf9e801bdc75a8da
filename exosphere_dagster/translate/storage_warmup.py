"""Imported by the forkserver that step processes are forked from (executor.py), after
``entry.preload``: every step opens the instance's storages, and each SQLite storage checks its
schema revision against Dagster's alembic scripts, which alembic reads again (about 90 files,
50-150 ms on a 2-CPU machine) at every check, three times per step. Here they are read once, in
the server; every step forked from it finds them in memory.

Only ``alembic.script.ScriptDirectory.from_config`` changes, in the forkserver and the steps
forked from it: one directory object per script location, whose revision map alembic already
caches on the object. The scripts of an installed Dagster do not change while a process lives.
"""

from __future__ import annotations

import logging
from typing import Any

from alembic.script import ScriptDirectory

logger = logging.getLogger("exosphere")
_from_config = ScriptDirectory.from_config.__func__  # type: ignore[attr-defined]
_shared: dict[tuple[type, str], ScriptDirectory] = {}


def _from_config_once(cls: type, config: Any) -> ScriptDirectory:
    key = (cls, str(config.get_main_option("script_location")))  # the run, event log and
    # schedule storages each have an ini file, all naming the same scripts
    found = _shared.get(key)
    if found is None:
        found = _shared[key] = _from_config(cls, config)
    return found


def warm() -> None:
    """Share script directories from now on, and read Dagster's storage scripts now."""
    ScriptDirectory.from_config = classmethod(_from_config_once)  # type: ignore[method-assign]
    try:
        from dagster._core.storage.runs.sqlite import sqlite_run_storage
        from dagster._core.storage.sql import get_alembic_config

        config = get_alembic_config(sqlite_run_storage.__file__)
        ScriptDirectory.from_config(config).as_revision_number("head")
    except Exception as exc:  # noqa: BLE001 - a warm-up must never stop the forkserver
        logger.warning("forkserver preload: could not read Dagster's storage scripts: %s", exc)


warm()

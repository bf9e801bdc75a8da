"""Checkpoints in a table of the instance's own Postgres database: every pod of a deployment
reaches it already, and each finished item is one committed INSERT, so a killed pod keeps every
item it finished.

The table (created if missing, under an advisory lock so that pods starting together do not
race) is ``exosphere_checkpoints``, in the schema the connection's ``search_path`` names, like
Dagster's own tables. ``payload`` is the pickled list of the item's outputs (or a step state
value, under an ``item_id`` starting with ``checkpoint.STATE_PREFIX``).
"""

from __future__ import annotations

import os
import pickle
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from exosphere_dagster.runtime.checkpoint import FramedLog

TABLE = "exosphere_checkpoints"
_CREATE_LOCK_KEY = 0x65786F73  # "exos": the advisory lock held around CREATE TABLE
_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    root_run_id TEXT NOT NULL,
    op TEXT NOT NULL,
    chunk TEXT NOT NULL,
    item_id TEXT NOT NULL,
    payload BYTEA NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (root_run_id, op, chunk, item_id)
)"""
_INSERT = sa.text(
    f"INSERT INTO {TABLE} (root_run_id, op, chunk, item_id, payload) "
    "VALUES (:root, :op, :chunk, :item, :payload) "
    "ON CONFLICT (root_run_id, op, chunk, item_id) "
    "DO UPDATE SET payload = EXCLUDED.payload, recorded_at = now()"
)
_SELECT = sa.text(
    f"SELECT item_id, payload FROM {TABLE} "
    "WHERE root_run_id = :root AND op = :op AND chunk = :chunk ORDER BY recorded_at"
)
_CHUNKS = sa.text(
    f"SELECT DISTINCT chunk FROM {TABLE} WHERE root_run_id = :root AND op = :op ORDER BY chunk"
)
_PRUNE = sa.text(  # whole root runs whose newest row is older than the cutoff
    f"WITH gone AS (DELETE FROM {TABLE} WHERE root_run_id IN (SELECT root_run_id FROM {TABLE} "
    "GROUP BY root_run_id HAVING max(recorded_at) < to_timestamp(:cutoff)) "
    "RETURNING root_run_id) SELECT DISTINCT root_run_id FROM gone ORDER BY root_run_id"
)

_engines: dict[tuple[int, str], Engine] = {}
_ready: set[tuple[int, str]] = set()
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One small pooled engine per process and URL (a step records items one by one; a new
    connection per INSERT would cost more than the INSERT). Created after a fork, never
    inherited from the parent, and with the table in place."""
    key = (os.getpid(), url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = sa.create_engine(
                url,
                isolation_level="AUTOCOMMIT",  # each statement commits when it returns
                pool_size=2,
                max_overflow=4,
                pool_pre_ping=True,
                pool_recycle=1800,
            )
            _engines[key] = engine
        if key not in _ready:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _CREATE_LOCK_KEY})
                try:
                    conn.execute(sa.text(_DDL))
                finally:
                    conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _CREATE_LOCK_KEY}
                    )
            _ready.add(key)
    return engine


def close_engines() -> None:
    """Close this process's pooled connections (at shutdown, or before dropping the schema)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _ready.clear()


class PostgresCheckpointLog(FramedLog):
    def __init__(self, url: str, root_run_id: str, op_name: str, chunk_key: str) -> None:
        self.url = url
        self.key = {"root": root_run_id, "op": op_name, "chunk": chunk_key}

    def _frames(self) -> dict[str, Any]:
        with engine_for(self.url).connect() as conn:
            rows = conn.execute(_SELECT, self.key).all()
        return {item_id: pickle.loads(payload) for item_id, payload in rows}

    def record(self, item_id: str, outputs: Any) -> None:
        payload = pickle.dumps(outputs, protocol=pickle.HIGHEST_PROTOCOL)
        with engine_for(self.url).connect() as conn:  # autocommit: durable when this returns
            conn.execute(_INSERT, {**self.key, "item": item_id, "payload": payload})

    def close(self) -> None:
        """Nothing to flush: every record was committed; connections go back to the pool."""


class PostgresCheckpointStore:
    """Checkpoint logs as rows of ``exosphere_checkpoints`` in the database at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def log_for(self, root_run_id: str, op_name: str, chunk_key: str) -> PostgresCheckpointLog:
        return PostgresCheckpointLog(self.url, root_run_id, op_name, chunk_key)

    def logs(self, root_run_id: str, op_name: str) -> list[PostgresCheckpointLog]:
        with engine_for(self.url).connect() as conn:
            chunks = conn.execute(_CHUNKS, {"root": root_run_id, "op": op_name}).scalars().all()
        return [self.log_for(root_run_id, op_name, chunk) for chunk in chunks]

    def prune(self, cutoff: float) -> list[str]:
        with engine_for(self.url).begin() as conn:
            return list(conn.execute(_PRUNE, {"cutoff": cutoff}).scalars().all())

    def __repr__(self) -> str:
        return f"Postgres table {TABLE} at {sa.make_url(self.url).render_as_string()}"

"""Checkpoint retention on every backend (files, Postgres, S3 on moto): a root run whose newest
checkpoint is older than ``EXOSPHERE_CHECKPOINT_RETENTION_DAYS`` is deleted whole, a newer one
is kept whole, nothing outside the store is touched, and each step process that opens the store
starts the pass itself (once per ``EXOSPHERE_CHECKPOINT_PRUNE_HOURS``)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import test_checkpoint_stores as stores
from dagster import instance_for_test

from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.runtime import checkpoint
from exosphere_dagster.runtime.checkpoint import checkpoint_store_for, expire

spec, pg_schema_url = stores.spec, stores.pg_schema_url  # the backends, as fixtures here
DAY = 86400


@pytest.fixture
def retention(monkeypatch: pytest.MonkeyPatch):
    def set_days(days: float, prune_hours: float = 1.0) -> None:
        monkeypatch.setenv("EXOSPHERE_CHECKPOINT_RETENTION_DAYS", str(days))
        monkeypatch.setenv("EXOSPHERE_CHECKPOINT_PRUNE_HOURS", str(prune_hours))

    return set_days


def days() -> float:
    """The retention the deployment sets (what a step passes to ``expire``)."""
    return Deployment.load().settings.checkpoint_retention_days


def write_run(store, root: str) -> None:
    for op in ("parse", "summarise"):
        for chunk in ("c0", "c1"):
            log = store.log_for(root, op, chunk)
            log.record(f"{chunk}-item", [{"op": op}])
            log.record_state("batch", "b-1")
            log.close()


def items(store, root: str) -> int:
    return sum(len(log.load()) for op in ("parse", "summarise") for log in store.logs(root, op))


@pytest.mark.parametrize("spec", stores.BACKENDS, indirect=True)
def test_runs_older_than_the_retention_are_deleted_whole(spec, retention, s3, moto_server):
    retention(7)
    store = stores.new_store(spec)
    old, recent = f"old-{uuid.uuid4().hex[:8]}", f"new-{uuid.uuid4().hex[:8]}"
    write_run(store, old)
    between = time.time()
    write_run(store, recent)
    outside = f"outside-{uuid.uuid4().hex[:8]}"
    if spec["kind"] == "s3":  # an object beside the store's prefix, and one at its root
        s3.put_object(Bucket=spec["bucket"], Key=f"deploy/{outside}", Body=b"keep")
        s3.put_object(Bucket=spec["bucket"], Key=f"deploy/ckpt/{outside}", Body=b"keep")

    assert (
        expire(store, days(), now=between - 1 + 7 * DAY) == []
    )  # both are younger than 7 days then
    assert expire(store, days(), now=between + 7 * DAY) == [old]
    assert items(store, old) == 0 and items(store, recent) == 4
    assert store.logs(old, "parse") == []
    if spec["kind"] == "s3":
        for key in (f"deploy/{outside}", f"deploy/ckpt/{outside}"):
            assert s3.get_object(Bucket=spec["bucket"], Key=key)["Body"].read() == b"keep"
    assert expire(store, days(), now=time.time() + 30 * DAY) == [recent]
    assert items(store, recent) == 0


@pytest.mark.parametrize("spec", ["files"], indirect=True)
def test_a_retention_of_zero_keeps_everything(spec, retention):
    retention(0)
    store = stores.new_store(spec)
    write_run(store, "forever")
    assert expire(store, days(), now=time.time() + 3650 * DAY) == []
    assert items(store, "forever") == 4
    assert checkpoint.expire_in_background(store, days(), 1.0) is None  # not even a thread


def test_opening_the_store_in_a_step_process_deletes_expired_runs(
    tmp_path: Path, retention, monkeypatch: pytest.MonkeyPatch
):
    """checkpoint_store_for (what every step calls) starts the pass in the background, once
    per EXOSPHERE_CHECKPOINT_PRUNE_HOURS for a store in a process."""
    retention(14, prune_hours=1)
    monkeypatch.setenv("EXOSPHERE_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    store = checkpoint.CheckpointStore(tmp_path / "ckpt")
    write_run(store, "aged")
    write_run(store, "fresh")
    month_ago = time.time() - 30 * DAY
    for path in (tmp_path / "ckpt" / "aged").rglob("*"):
        os.utime(path, (month_ago, month_ago))
    checkpoint._LAST_PRUNE.pop(repr(store), None)
    with instance_for_test() as instance:
        opened = checkpoint_store_for(instance, Deployment.load())
        assert repr(opened) == repr(store)
        _, thread = checkpoint._LAST_PRUNE[repr(store)]
        thread.join()
        assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["fresh"]
        write_run(store, "aged-again")
        for path in (tmp_path / "ckpt" / "aged-again").rglob("*"):
            os.utime(path, (month_ago, month_ago))
        checkpoint_store_for(instance, Deployment.load())  # within the hour: no second pass
        assert checkpoint._LAST_PRUNE[repr(store)][1] is thread
        assert (tmp_path / "ckpt" / "aged-again").is_dir()

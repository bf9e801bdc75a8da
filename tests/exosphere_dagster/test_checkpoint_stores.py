"""Checkpoint stores every pod of a deployment sees: the instance's Postgres database (the real
server at 127.0.0.1, one fresh schema per test) and S3 (moto's server), beside local files.

Pods are separate processes (``checkpoint_pod.py``) with their own store objects and
connections; a killed pod is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from byo_satellites import read_calls
from checkpoint_pod import outputs_for
from dagster import instance_for_test

from clusters import cluster_from, write_cluster
from exosphere_dagster.entry.launch import rerun, run_cluster_file
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.settings import SettingsError
from exosphere_dagster.runtime import checkpoint_postgres
from exosphere_dagster.runtime.checkpoint import CheckpointStore, checkpoint_store_for
from exosphere_dagster.runtime.checkpoint_postgres import PostgresCheckpointStore
from exosphere_dagster.runtime.checkpoint_s3 import S3CheckpointStore

pytestmark = pytest.mark.integration

POD = Path(__file__).with_name("checkpoint_pod.py")
BACKENDS = ["files", "postgres", "s3"]


def wait_for(predicate, what: str, timeout: float = 120.0):
    """Poll until ``predicate()`` is truthy; the ceiling only stops a hung test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pg_schema_url(postgres_url):
    """The test database with a fresh schema first on the search path; dropped afterwards."""
    schema = f"ckpt_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        checkpoint_postgres.close_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def spec(request, tmp_path):
    """How a pod reaches the store (JSON for checkpoint_pod.py), for each backend."""
    kind = request.param
    if kind == "postgres":
        return {"kind": kind, "url": request.getfixturevalue("pg_schema_url")}
    if kind == "s3":
        endpoint = request.getfixturevalue("moto_server")
        bucket = request.getfixturevalue("s3_bucket")
        return {"kind": kind, "bucket": bucket, "prefix": "deploy/ckpt", "endpoint": endpoint}
    return {"kind": kind, "dir": str(tmp_path / "ckpt")}


def new_store(spec: dict):
    """A store object as a fresh process would build it (no state shared with other stores)."""
    from checkpoint_pod import store_from

    return store_from(spec)


def pod(spec: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(POD), json.dumps(spec), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def loaded_by_pod(spec: dict, root: str, op: str, *chunk: str) -> list[dict]:
    return json.loads(finish(pod(spec, "load", root, op, *chunk)))


@pytest.mark.parametrize("spec", BACKENDS, indirect=True)
def test_record_load_round_trip(spec):
    root = uuid.uuid4().hex
    writer = new_store(spec)
    first = writer.log_for(root, "parse_pdf", "c00000")
    first.record("a~1", [{"markdown": "# a", "pages": [1, 2]}, {"raw": b"\x00\xff"}])
    first.record("b~2", [])  # an item that ended (no outputs) is finished too
    first.close()
    second = writer.log_for(root, "parse_pdf", "c00001")
    second.record("c~3", [{"markdown": "# c"}])
    second.record("c~3", [{"markdown": "# c, again"}])  # recorded twice: the later one wins
    second.close()
    writer.log_for(root, "other_op", "c00000").close()  # opened, nothing recorded

    reader = new_store(spec)
    assert reader.log_for(root, "parse_pdf", "c00000").load() == {
        "a~1": [{"markdown": "# a", "pages": [1, 2]}, {"raw": b"\x00\xff"}],
        "b~2": [],
    }
    assert reader.log_for(root, "parse_pdf", "c00001").load() == {
        "c~3": [{"markdown": "# c, again"}]
    }
    assert [log.load() for log in reader.logs(root, "parse_pdf")] == [
        {"a~1": [{"markdown": "# a", "pages": [1, 2]}, {"raw": b"\x00\xff"}], "b~2": []},
        {"c~3": [{"markdown": "# c, again"}]},
    ]
    assert reader.logs(root, "other_op") == []
    assert reader.logs(uuid.uuid4().hex, "parse_pdf") == []
    assert reader.log_for(root, "parse_pdf", "c00002").load() == {}


@pytest.mark.parametrize("spec", BACKENDS, indirect=True)
def test_a_killed_pod_keeps_every_item_it_finished(spec):
    """A pod records 3 items and is SIGKILLed without closing its log; a new pod loads exactly
    those 3. Files and Postgres keep an item when ``record`` returns; S3 writes in the
    background (one PUT behind), so the test kills once the 3 objects' items are visible."""
    root, items = uuid.uuid4().hex, ["item-0~a", "item-1~b", "item-2~c"]
    proc = pod(spec, "hold", root, "record", "c00000", *items)
    try:
        wait_for(lambda: proc.stdout.readline().strip() == "held", "the pod to record 3 items")
        if spec["kind"] == "s3":
            reader = new_store(spec).log_for(root, "record", "c00000")
            wait_for(lambda: len(reader.load()) == 3, "the background writer")
        assert proc.poll() is None  # still alive, log not closed
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert loaded_by_pod(spec, root, "record", "c00000") == [
        {item: outputs_for(item) for item in items}
    ]


@pytest.mark.parametrize("spec", BACKENDS, indirect=True)
def test_two_pods_see_the_same_checkpoints(spec):
    """Two pods write at once, to different chunks and to the same chunk (a step retried while
    its first pod is still running); a third pod and this process see all of it."""
    root = uuid.uuid4().hex
    a = pod(spec, "record", root, "record", "c00000", "a0", "a1", "a2")
    b = pod(spec, "record", root, "record", "c00001", "b0", "b1")
    c = pod(spec, "record", root, "record", "c00000", "c0", "c1")
    for proc in (a, b, c):
        finish(proc)
    expected = [
        {i: outputs_for(i) for i in ("a0", "a1", "a2", "c0", "c1")},
        {i: outputs_for(i) for i in ("b0", "b1")},
    ]
    assert loaded_by_pod(spec, root, "record") == expected
    assert [log.load() for log in new_store(spec).logs(root, "record")] == expected


def test_s3_groups_items_that_finish_during_a_put(moto_server, s3, s3_bucket):
    """Group commit: fast items share objects, yet every item is kept and readable."""
    store = S3CheckpointStore(bucket=s3_bucket, prefix="p", client=s3)
    log = store.log_for("root", "split", "c00000")
    for n in range(200):
        log.record(f"i{n}", [{"n": n}])
    log.close()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="p/")["Contents"]]
    assert all(k.startswith("p/root/split/c00000/") and k.endswith(".ckpt") for k in keys)
    assert 1 <= len(keys) < 200
    assert store.log_for("root", "split", "c00000").load() == {
        f"i{n}": [{"n": n}] for n in range(200)
    }


def test_s3_object_with_a_torn_last_frame_keeps_its_whole_frames(s3, s3_bucket):
    """S3 PUTs are atomic, but an S3-compatible store might not be: a truncated object still
    gives back the items whose frames are whole."""
    from exosphere_dagster.runtime.checkpoint import frame

    body = frame("x", [{"ok": 1}]) + frame("y", [{"ok": 2}])[:9]
    s3.put_object(Bucket=s3_bucket, Key="r/op/c0/0001-torn.ckpt", Body=body)
    assert S3CheckpointStore(s3_bucket, "", s3).log_for("r", "op", "c0").load() == {
        "x": [{"ok": 1}]
    }


def test_s3_write_failure_is_reported_at_close(s3):
    log = S3CheckpointStore(f"missing-{uuid.uuid4().hex[:8]}", "p", s3).log_for("r", "op", "c0")
    log.record("a", [{}])
    with pytest.raises(
        RuntimeError, match=r"could not write checkpoints to s3://missing-.*NoSuchBucket"
    ):
        log.close()


def test_postgres_table_is_created_once_by_pods_starting_together(pg_schema_url):
    spec = {"kind": "postgres", "url": pg_schema_url}
    root = uuid.uuid4().hex
    pods = [pod(spec, "record", root, "op", f"c{n}", f"item{n}") for n in range(6)]
    for proc in pods:
        finish(proc)
    assert [log.load() for log in new_store(spec).logs(root, "op")] == [
        {f"item{n}": outputs_for(f"item{n}")} for n in range(6)
    ]


def test_the_store_follows_the_instance(sqlite_instance, postgres_instance, monkeypatch, tmp_path):
    monkeypatch.delenv("EXOSPHERE_CHECKPOINT_DIR", raising=False)
    monkeypatch.delenv("EXOSPHERE_CHECKPOINT_S3_URL", raising=False)
    # Deployment.load() reads the environment again when it changed
    local = checkpoint_store_for(sqlite_instance, Deployment.load())
    assert isinstance(local, CheckpointStore)
    assert local.base_dir == Path(sqlite_instance.storage_directory()) / "exosphere_checkpoints"

    shared = checkpoint_store_for(postgres_instance, Deployment.load())
    assert isinstance(shared, PostgresCheckpointStore)
    assert shared.url == postgres_instance.run_storage.postgres_url

    monkeypatch.setenv("EXOSPHERE_CHECKPOINT_DIR", str(tmp_path / "volume"))
    assert (
        checkpoint_store_for(postgres_instance, Deployment.load()).base_dir == tmp_path / "volume"
    )

    monkeypatch.setenv("EXOSPHERE_CHECKPOINT_S3_URL", "s3://ckpt-bucket/team/a/")
    monkeypatch.setenv("EXOSPHERE_CHECKPOINT_RETENTION_DAYS", "0")  # no pass: no AWS reached
    s3_store = checkpoint_store_for(postgres_instance, Deployment.load())
    assert isinstance(s3_store, S3CheckpointStore)
    assert (s3_store.bucket, s3_store.prefix) == ("ckpt-bucket", "team/a/")

    monkeypatch.setenv("EXOSPHERE_CHECKPOINT_S3_URL", "ckpt-bucket/team")
    with pytest.raises(  # the deployment's own error, before any step (it failed each step)
        SettingsError,
        match=r"EXOSPHERE_CHECKPOINT_S3_URL: expected s3://bucket/prefix \(found 'ckpt-b",
    ):
        checkpoint_store_for(postgres_instance, Deployment.load())


def test_reexecution_on_postgres_resumes_with_the_local_storage_gone(
    tmp_path, pg_schema_url, monkeypatch
):
    """A run on a Postgres instance fails for 2 of 5 items; the instance's local storage folder
    is deleted (a new pod); the re-execution calls the satellite for those 2 items only."""
    monkeypatch.delenv("EXOSPHERE_CHECKPOINT_DIR", raising=False)
    monkeypatch.delenv("EXOSPHERE_CHECKPOINT_S3_URL", raising=False)
    log_dir, cause = tmp_path / "calls", tmp_path / "cause"
    log_dir.mkdir()
    cause.write_text("broken")
    flaky = cluster_from(
        "items-record-after",
        identifier="test/pg-resume",
        config={
            "items": {"count": 5},
            "record": {"log_dir": log_dir, "fail_for": ["item-1", "item-3"], "fail_while": cause},
            "after": {"log_dir": log_dir},
        },
    )
    path = write_cluster(tmp_path, "pg.yml", flaky)
    home = tmp_path / "home"
    home.mkdir()
    overrides = {"storage": {"postgres": {"postgres_url": pg_schema_url}}}
    with instance_for_test(temp_dir=str(home), overrides=overrides) as instance:
        first = run_cluster_file(path, instance=instance)
        assert not first.success
        # the red record chunk passes its good items on: they reach `after` in this run
        good = ["item-0", "item-2", "item-4"]
        assert Counter(read_calls(log_dir)) == Counter(good + [f"after-{i}" for i in good])
        with sa.create_engine(pg_schema_url).connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT op, count(*) FROM exosphere_checkpoints WHERE root_run_id = :r "
                    "GROUP BY op ORDER BY op"
                ),
                {"r": first.run_id},
            ).all()
        assert dict(rows)["record"] == 3 and dict(rows)["after"] == 3, rows  # the good items
        storage = Path(instance.storage_directory())
        assert not list(storage.rglob("*.ckpt"))
        shutil.rmtree(storage)  # the next pod starts without the first one's disk

        cause.unlink()
        again = rerun(first.run_id, instance=instance)
        assert again.success
        calls = Counter(read_calls(log_dir))  # each once: `after` re-ran only items 1 and 3
        assert calls == Counter(
            ["item-0", "item-2", "item-4", "item-1", "item-3"]
            + [f"after-item-{n}" for n in range(5)]
        )
        run = instance.get_run_by_id(again.run_id)
        assert run.root_run_id == first.run_id
        assert (run.tags["exosphere/items"], run.tags["exosphere/succeeded"]) == ("5", "5")

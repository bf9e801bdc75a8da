"""Folder and S3 triggers under a real ``dagster-daemon`` (sensor daemon, SQLite instance, the
product's code location, S3 on a moto server).

The run queue is closed (``max_concurrent_runs: 0``): what is under test is which runs the
sensors create and with which inputs, not their execution (tests/deployment/test_daemon_queue.py
runs real runs). The daemon evaluates sensors every 5 seconds; each step waits on sensor ticks
recorded in the instance, not on time.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import instance_config, running_daemon, sensor_ticks, wait_for
from dagster import DagsterInstance, RunsFilter

from clusters import cluster, satellite_entry, write_cluster
from exosphere_dagster.resolve.tags import DEADLINE_TAG, TRIGGER_TIME_TAG
from satellite_env import satellite_env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

HERE = Path(__file__).resolve().parent
BUCKET = "trigger-inbox"
FOLDERS = ("moved", "growing", "reused")


def triggered(name: str, trigger: dict) -> dict:
    """A 12h cluster of one no-op satellite, started by ``trigger``."""
    work = satellite_entry("satellite/deploytest/noop", "work", {})
    return cluster(f"triggertest/{name}", [work], sla="12h", trigger=trigger)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, moto_server) -> Iterator[dict[str, Any]]:
    import boto3

    base = tmp_path_factory.mktemp("triggers")
    clusters = base / "clusters"
    clusters.mkdir()
    folders = {name: base / name for name in FOLDERS}
    for name, folder in folders.items():
        folder.mkdir()
        trigger = {"folder": {"path": folder, "pattern": "*.pdf", "interval": 5}}
        write_cluster(clusters, f"{name}.yml", triggered(name, trigger))
    # the first file or object of each scenario is there from the start: their runs are
    # created while the daemon starts and earlier tests run
    (folders["moved"] / "first.pdf").write_text("first")
    (folders["reused"] / "a.pdf").write_text("first version")
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="in/q1.pdf", Body=b"version 1")
    s3.put_object(Bucket=BUCKET, Key="in/q2.pdf", Body=b"unchanged")
    uploads = {"bucket": BUCKET, "prefix": "in/", "endpoint-url": moto_server, "interval": 5}
    write_cluster(clusters, "uploads.yml", triggered("uploads", {"s3": uploads}))
    config = instance_config()
    config["run_coordinator"]["config"]["max_concurrent_runs"] = 0  # keep created runs queued
    env = {"EXOSPHERE_CLUSTERS_DIR": str(clusters), **satellite_env(HERE, "deploy_satellites")}
    with (
        running_daemon(base, config, env) as (home, log),
        DagsterInstance.from_config(str(home)) as instance,
    ):
        yield {"instance": instance, "log": log, "folders": folders, "s3": s3, "base": base}


def sensor_runs(daemon: dict[str, Any], name: str) -> list[Any]:
    """Runs the sensor created, oldest first."""
    found = daemon["instance"].get_run_records(RunsFilter(tags={"dagster/sensor_name": name}))
    return [record.dagster_run for record in sorted(found, key=lambda r: r.storage_id)]


def inputs_of(runs: list[Any]) -> list[dict[str, Any]]:
    return [
        i for run in runs for i in run.run_config["ops"]["exosphere__start"]["config"]["inputs"]
    ]


def launched(daemon: dict[str, Any], sensor: str, count: int) -> list[Any]:
    """Wait until the sensor has created runs covering ``count`` inputs; those runs."""

    def enough() -> list[Any] | None:
        runs = sensor_runs(daemon, sensor)
        return runs if len(inputs_of(runs)) >= count else None

    return wait_for(f"{sensor} to have launched {count} input(s)", enough, daemon["log"])


def next_tick(daemon: dict[str, Any], sensor: str) -> None:
    """Wait for a tick of ``sensor`` that started after now (so it saw what was done before)."""
    now = time.time()
    wait_for(
        f"a tick of {sensor}",
        lambda: sensor_ticks(daemon["instance"], sensor, after=now),
        daemon["log"],
    )


def test_files_renamed_or_moved_in_with_older_mtimes_start_runs(daemon):
    inbox, sensor = daemon["folders"]["moved"], "triggertest__moved__files"
    [run] = launched(daemon, sensor, 1)
    span = datetime.fromisoformat(run.tags[DEADLINE_TAG]) - datetime.fromisoformat(
        run.tags[TRIGGER_TIME_TAG]
    )
    assert span == timedelta(hours=12)
    newest = (inbox / "first.pdf").stat().st_mtime
    part = inbox / ".second.pdf.part"  # written under a name outside the pattern, then renamed
    part.write_text("second")
    os.utime(part, (newest - 60, newest - 60))
    part.rename(inbox / "second.pdf")
    outside = daemon["base"] / "third.pdf"  # `mv` / `cp -p` / `rsync -a`: an old mtime
    outside.write_text("third")
    os.utime(outside, (newest - 365 * 86400,) * 2)
    outside.rename(inbox / "third.pdf")
    runs = launched(daemon, sensor, 3)
    assert sorted(i["file-name"] for i in inputs_of(runs)) == [
        "first.pdf",
        "second.pdf",
        "third.pdf",
    ]


def test_a_growing_file_starts_one_run_with_its_full_size_once_stable(daemon):
    inbox, sensor = daemon["folders"]["growing"], "triggertest__growing__files"
    path, stop = inbox / "big.pdf", threading.Event()

    def write_slowly() -> None:  # a download in progress: a little more every 0.1 s
        with path.open("wb") as out:
            while not stop.is_set():
                out.write(b"%" * 100)
                out.flush()
                stop.wait(0.1)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    try:
        wait_for("the file to appear", path.exists, daemon["log"])
        next_tick(daemon, sensor)
        next_tick(daemon, sensor)  # two ticks, each seeing another size
        assert sensor_runs(daemon, sensor) == [], "launched while still being written"
    finally:
        stop.set()
        writer.join()
    [run] = launched(daemon, sensor, 1)
    [item] = inputs_of([run])
    assert (item["file-name"], item["size"]) == ("big.pdf", path.stat().st_size)
    skipped = sensor_ticks(daemon["instance"], sensor)
    assert any("waiting to settle" in (t.skip_reason or "") for t in skipped)
    next_tick(daemon, sensor)
    assert len(sensor_runs(daemon, sensor)) == 1


def test_a_new_file_reusing_a_processed_name_starts_a_second_run(daemon):
    inbox, sensor = daemon["folders"]["reused"], "triggertest__reused__files"
    launched(daemon, sensor, 1)
    (inbox / "a.pdf").unlink()
    (inbox / "a.pdf").write_text("second version, longer")
    first, second = launched(daemon, sensor, 2)
    assert [i["size"] for i in inputs_of([first, second])] == [13, 22]
    assert first.tags["dagster/run_key"] != second.tags["dagster/run_key"]


def test_s3_objects_run_again_for_new_content_not_for_the_same_bytes(daemon):
    s3, sensor = daemon["s3"], "triggertest__uploads__s3"
    launched(daemon, sensor, 2)
    s3.put_object(Bucket=BUCKET, Key="in/q1.pdf", Body=b"version 2")  # new bytes: new ETag
    s3.put_object(Bucket=BUCKET, Key="in/q2.pdf", Body=b"unchanged")  # same bytes, same ETag
    launched(daemon, sensor, 3)
    next_tick(daemon, sensor)  # and nothing more after it
    runs = sensor_runs(daemon, sensor)
    seen = [(i["file-path"], i["etag"]) for i in inputs_of(runs)]
    md5 = {
        body: hashlib.md5(body).hexdigest() for body in (b"version 1", b"version 2", b"unchanged")
    }
    assert sorted(seen) == sorted(
        [
            ("in/q1.pdf", md5[b"version 1"]),
            ("in/q1.pdf", md5[b"version 2"]),
            ("in/q2.pdf", md5[b"unchanged"]),
        ]
    )

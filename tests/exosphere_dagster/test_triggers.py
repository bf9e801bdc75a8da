"""Triggers, evaluated through Dagster's own sensor and schedule machinery on a real instance.

Sensors start each arrival (a file's path + mtime + size, an S3 key + ETag) once, whatever its
mtime, only once it is stable, and again when a new version reuses the name; the cursor stays
the size of what is present. A cron schedule's deadline is trigger time + SLA in real hours,
across daylight-saving changes. The same behaviour under a running ``dagster-daemon`` is in
tests/deployment/test_daemon_triggers.py.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import build_schedule_context, build_sensor_context
from dagster._utils.schedules import schedule_execution_time_iterator

from clusters import cluster_from, write_cluster
from exosphere_dagster.definitions import build_definitions
from exosphere_dagster.resolve.execution_plan import RunWindow
from exosphere_dagster.resolve.settings import reload_settings
from exosphere_dagster.resolve.tags import DEADLINE_TAG, TRIGGER_TIME_TAG
from exosphere_dagster.runtime.arrivals import Arrival, run_key, select_new


def definitions(tmp_path: Path, identifier: str, sla: str, trigger: dict):
    """The code location over one fixture cluster started by ``trigger``."""
    clusters = tmp_path / "clusters"
    clusters.mkdir(exist_ok=True)
    triggered = cluster_from("fan-out", identifier=identifier, sla=sla, trigger=trigger)
    write_cluster(clusters, "cluster.yml", triggered)
    return build_definitions(clusters).get_repository_def()


def tick(sensor, instance, cursor):
    """One evaluation: (run inputs, run keys, cursor after it)."""
    result = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor))
    inputs = [
        i
        for r in result.run_requests
        for i in r.run_config["ops"]["exosphere__start"]["config"]["inputs"]
    ]
    return inputs, [r.run_key for r in result.run_requests], result.cursor or cursor


def names(inputs):
    return sorted(i["file-name"] for i in inputs)


@pytest.fixture
def inbox_sensor(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    folder = {"path": inbox, "pattern": "*.pdf", "interval": 5}
    repo = definitions(tmp_path, "acme/inbox", "12h", {"folder": folder})
    return inbox, repo.get_sensor_def("acme__inbox__files")


def test_folder_files_start_once_when_stable_whatever_their_mtime(inbox_sensor, sqlite_instance):
    inbox, sensor = inbox_sensor
    for name in ("a.pdf", "b.pdf", "notes.txt"):
        (inbox / name).write_text(name)
    first, _, cursor = tick(sensor, sqlite_instance, None)
    assert first == []  # seen once: not known to be complete yet
    inputs, _, cursor = tick(sensor, sqlite_instance, cursor)
    assert names(inputs) == ["a.pdf", "b.pdf"]
    assert {i["size"] for i in inputs} == {5}
    assert tick(sensor, sqlite_instance, cursor)[0] == []

    # write-then-rename, and a move from elsewhere keeping a year-old mtime (mv, cp -p, rsync -a)
    newest = (inbox / "b.pdf").stat().st_mtime
    (inbox / ".c.pdf.part").write_text("c")
    os.utime(inbox / ".c.pdf.part", (newest - 60, newest - 60))
    (inbox / ".c.pdf.part").rename(inbox / "c.pdf")
    outside = inbox.parent / "d.pdf"
    outside.write_text("d")
    os.utime(outside, (newest - 365 * 86400,) * 2)
    outside.rename(inbox / "d.pdf")
    _, _, cursor = tick(sensor, sqlite_instance, cursor)
    inputs, _, cursor = tick(sensor, sqlite_instance, cursor)
    assert names(inputs) == ["c.pdf", "d.pdf"]


def test_growing_file_waits_until_unchanged_on_two_ticks(inbox_sensor, sqlite_instance):
    inbox, sensor = inbox_sensor
    path = inbox / "big.pdf"
    cursor = None
    with path.open("wb") as out:
        for chunk in range(3):  # each tick sees a bigger file
            out.write(b"x" * 1000)
            out.flush()
            inputs, _, cursor = tick(sensor, sqlite_instance, cursor)
            assert inputs == [], f"launched while still growing (chunk {chunk})"
    inputs, _, cursor = tick(sensor, sqlite_instance, cursor)
    assert [(i["file-name"], i["size"]) for i in inputs] == [("big.pdf", 3000)]
    assert tick(sensor, sqlite_instance, cursor)[0] == []


def test_settle_seconds_hold_a_file_until_its_mtime_is_old_enough(
    inbox_sensor, sqlite_instance, monkeypatch
):
    inbox, sensor = inbox_sensor
    monkeypatch.setenv("EXOSPHERE_FOLDER_SETTLE_SECONDS", "3600")
    reload_settings()  # the fixture's definitions already read them
    (inbox / "slow.pdf").write_text("part")
    (inbox / "old.pdf").write_text("done")
    os.utime(inbox / "old.pdf", (time.time() - 7200,) * 2)
    cursor = None
    for _ in range(3):  # unchanged on every tick, but written less than an hour ago
        inputs, _, cursor = tick(sensor, sqlite_instance, cursor)
        assert "slow.pdf" not in names(inputs)
    os.utime(inbox / "slow.pdf", (time.time() - 3601,) * 2)
    _, _, cursor = tick(sensor, sqlite_instance, cursor)  # a new mtime is a new version
    inputs, _, cursor = tick(sensor, sqlite_instance, cursor)
    assert names(inputs) == ["slow.pdf"]


def test_a_new_file_under_a_processed_name_starts_a_new_run(inbox_sensor, sqlite_instance):
    inbox, sensor = inbox_sensor
    (inbox / "a.pdf").write_text("first")
    _, _, cursor = tick(sensor, sqlite_instance, None)
    inputs, keys, cursor = tick(sensor, sqlite_instance, cursor)
    assert names(inputs) == ["a.pdf"]
    (inbox / "a.pdf").unlink()
    (inbox / "a.pdf").write_text("second version")
    _, _, cursor = tick(sensor, sqlite_instance, cursor)
    inputs, keys2, cursor = tick(sensor, sqlite_instance, cursor)
    assert [(i["file-name"], i["size"]) for i in inputs] == [("a.pdf", 14)]
    assert keys2 != keys  # Dagster would skip a repeated run key


def test_identical_file_put_back_after_it_was_gone_runs_again(inbox_sensor, sqlite_instance):
    """Same name, mtime and size: one run per appearance, not one per identity forever."""
    inbox, sensor = inbox_sensor
    (inbox / "a.pdf").write_text("same")
    stamp = (inbox / "a.pdf").stat().st_mtime_ns
    _, _, cursor = tick(sensor, sqlite_instance, None)
    _, keys, cursor = tick(sensor, sqlite_instance, cursor)
    (inbox / "a.pdf").unlink()
    inputs, _, cursor = tick(sensor, sqlite_instance, cursor)
    assert inputs == [] and json.loads(cursor)["done"] == []  # saw it gone: forgot it
    (inbox / "a.pdf").write_text("same")
    os.utime(inbox / "a.pdf", ns=(stamp, stamp))
    _, _, cursor = tick(sensor, sqlite_instance, cursor)
    inputs, keys2, _ = tick(sensor, sqlite_instance, cursor)
    assert names(inputs) == ["a.pdf"] and keys2 != keys


def test_cursor_keeps_only_what_is_present(inbox_sensor, sqlite_instance):
    inbox, sensor = inbox_sensor
    for n in range(10_000):
        (inbox / f"{n:05}.pdf").write_text("x")
    started = time.perf_counter()
    _, _, cursor = tick(sensor, sqlite_instance, None)
    inputs, keys, cursor = tick(sensor, sqlite_instance, cursor)
    elapsed = time.perf_counter() - started
    assert len(inputs) == 10_000 and len(set(keys)) == 10  # 1,000 files per run
    full = len(cursor)
    for n in range(10, 10_000):
        (inbox / f"{n:05}.pdf").unlink()
    assert tick(sensor, sqlite_instance, cursor)[0] == []
    cursor = tick(sensor, sqlite_instance, cursor)[2]
    assert len(json.loads(cursor)["done"]) == 10 and len(cursor) < 300
    assert full < 10_000 * 16, full  # about 15 bytes per present file
    print(f"\n10,000 files: cursor {full} bytes, two ticks {elapsed:.2f}s; 10 left: {len(cursor)}")


def test_cursor_from_the_mtime_watermark_format_does_not_rerun_the_folder():
    listing = [Arrival("a", "1", 1.0, {}), Arrival("b", "2", 2.0, {}), Arrival("c", "2", 2.0, {})]
    old_cursor = {"since": 2.0, "names": ["b"]}
    selection = select_new([*listing, Arrival("d", "3", 3.0, {})], old_cursor)
    assert [a.name for a in selection.ready] == ["c", "d"]
    assert "since" not in selection.cursor and len(selection.cursor["done"]) == 4


def test_run_keys_repeat_for_a_retried_tick_and_change_after_a_launch():
    batch = [Arrival("a", "1", 1.0, {})]
    cursor = select_new(batch, {}).cursor
    assert run_key(cursor, batch) == run_key(dict(cursor), list(batch))
    assert run_key(cursor, batch) != run_key({**cursor, "n": cursor["n"] + 1}, batch)
    assert run_key(cursor, batch) != run_key(cursor, [Arrival("a", "2", 1.0, {})])


@pytest.mark.integration
def test_s3_objects_start_once_per_content(tmp_path, sqlite_instance, moto_server, s3):
    s3.create_bucket(Bucket="inbox-bucket")
    for key in ("in/q1.pdf", "in/q2.PDF", "in/readme.txt", "other/q3.pdf"):
        s3.put_object(Bucket="inbox-bucket", Key=key, Body=b"%PDF-1.4")
    inbox = {
        "bucket": "inbox-bucket",
        "prefix": "in/",
        "extension": "pdf",
        "endpoint-url": moto_server,
    }
    repo = definitions(tmp_path, "acme/s3-inbox", "6h", {"s3": inbox})
    sensor = repo.get_sensor_def("acme__s3_inbox__s3")
    inputs, _, cursor = tick(sensor, sqlite_instance, None)  # an upload is atomic: no wait
    assert sorted(i["file-path"] for i in inputs) == ["in/q1.pdf", "in/q2.PDF"]
    assert inputs[0]["uri"].startswith("s3://inbox-bucket/in/")
    assert tick(sensor, sqlite_instance, cursor)[0] == []
    s3.put_object(Bucket="inbox-bucket", Key="in/q4.pdf", Body=b"%PDF-1.4")
    s3.put_object(Bucket="inbox-bucket", Key="in/q1.pdf", Body=b"%PDF-1.4 new content")
    s3.put_object(Bucket="inbox-bucket", Key="in/q2.PDF", Body=b"%PDF-1.4")  # same bytes again
    inputs, _, cursor = tick(sensor, sqlite_instance, cursor)
    assert sorted(i["file-path"] for i in inputs) == ["in/q1.pdf", "in/q4.pdf"]
    assert tick(sensor, sqlite_instance, cursor)[0] == []


@pytest.mark.parametrize(
    ("timezone", "night", "real_hours_between_ticks"),
    [
        ("Europe/Berlin", datetime(2026, 3, 28), 23),  # spring forward: 02:00 -> 03:00
        ("Europe/Berlin", datetime(2026, 10, 24), 25),  # fall back: 03:00 -> 02:00
        ("America/New_York", datetime(2026, 3, 7), 23),
        ("America/New_York", datetime(2026, 10, 31), 25),
    ],
)
def test_cron_deadline_is_24_real_hours_across_daylight_saving(
    tmp_path, sqlite_instance, timezone, night, real_hours_between_ticks
):
    """The ticks are the ones Dagster's scheduler computes for a daily cron in that zone."""
    repo = definitions(
        tmp_path, "acme/nightly", "24h", {"cron": "0 12 * * *", "timezone": timezone}
    )
    schedule = repo.get_schedule_def("acme__nightly__schedule")
    start = night.replace(tzinfo=ZoneInfo(timezone)).timestamp()
    ticks = schedule_execution_time_iterator(start, schedule.cron_schedule, timezone)
    first, second = next(ticks), next(ticks)
    assert second.timestamp() - first.timestamp() == real_hours_between_ticks * 3600
    context = build_schedule_context(instance=sqlite_instance, scheduled_execution_time=first)
    [request] = schedule.evaluate_tick(context).run_requests
    trigger = datetime.fromisoformat(request.tags[TRIGGER_TIME_TAG])
    deadline = datetime.fromisoformat(request.tags[DEADLINE_TAG])
    assert trigger.timestamp() == first.timestamp()
    assert deadline.timestamp() - trigger.timestamp() == 24 * 3600
    # so the deadline falls an hour off the next tick's wall-clock time, not on it
    local = deadline.astimezone(ZoneInfo(timezone))
    assert local.hour == (12 + 24 - real_hours_between_ticks) and local.date() == second.date()


def test_deadline_for_counts_real_hours():
    berlin = datetime(2026, 3, 28, 12, tzinfo=ZoneInfo("Europe/Berlin"))
    assert (berlin + timedelta(hours=24)).timestamp() - berlin.timestamp() == 23 * 3600
    day, six = RunWindow(24 * 3600, 0.0), RunWindow(6 * 3600, 0.0)
    assert day.deadline(berlin) == datetime(2026, 3, 29, 11, tzinfo=UTC)
    assert six.deadline(datetime(2026, 3, 28, 11)) == datetime(2026, 3, 28, 17, tzinfo=UTC)
    assert day.window_tags(berlin) == {
        TRIGGER_TIME_TAG: "2026-03-28T11:00:00+00:00",
        DEADLINE_TAG: "2026-03-29T11:00:00+00:00",
    }

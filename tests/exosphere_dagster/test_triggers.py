"""Sensors start each new object or file exactly once; the cursor survives bursts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import build_sensor_context

from exosphere_dagster.definitions import build_definitions
from exosphere_dagster.triggers import select_new

FOLDER_CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: acme/inbox
  sla: 12h
  trigger:
    folder: {{path: {inbox}, pattern: "*.pdf", interval: 5}}
  satellites:
    - uses: satellite/test/fan-out
      config: {{count: 1}}
"""

S3_CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: acme/s3-inbox
  sla: 6h
  trigger:
    s3: {{bucket: {bucket}, prefix: in/, extension: pdf, endpoint-url: "{endpoint}"}}
  satellites:
    - uses: satellite/test/fan-out
      config: {{count: 1}}
"""


def tick(sensor, instance, cursor):
    result = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor))
    inputs = [
        i
        for r in result.run_requests
        for i in r.run_config["ops"]["exosphere__start"]["config"]["inputs"]
    ]
    return inputs, result.cursor or cursor


def test_select_new_handles_equal_timestamps():
    listing = [("a", 1.0, {"k": "a"}), ("b", 2.0, {"k": "b"}), ("c", 2.0, {"k": "c"})]
    new, cursor = select_new(listing, {})
    assert [n for n, _ in new] == ["a", "b", "c"] and cursor == {"since": 2.0, "names": ["b", "c"]}
    again, cursor2 = select_new([*listing, ("d", 2.0, {"k": "d"})], cursor)
    assert [n for n, _ in again] == ["d"] and cursor2["names"] == ["b", "c", "d"]
    assert select_new(listing, cursor2)[0] == []


def test_folder_sensor_starts_each_file_once(tmp_path, sqlite_instance):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    (clusters / "inbox.yml").write_text(FOLDER_CLUSTER.format(inbox=inbox))
    sensor = build_definitions(clusters).get_repository_def().get_sensor_def("acme__inbox__files")
    for name in ("a.pdf", "b.pdf", "notes.txt"):
        (inbox / name).write_text(name)
    inputs, cursor = tick(sensor, sqlite_instance, None)
    assert sorted(i["file-name"] for i in inputs) == ["a.pdf", "b.pdf"]
    assert tick(sensor, sqlite_instance, cursor)[0] == []
    (inbox / "c.pdf").write_text("c")
    os.utime(inbox / "c.pdf", (Path(inbox / "b.pdf").stat().st_mtime + 5,) * 2)
    inputs, _ = tick(sensor, sqlite_instance, cursor)
    assert [i["file-name"] for i in inputs] == ["c.pdf"]


@pytest.mark.integration
def test_s3_sensor_starts_each_object_once(tmp_path, sqlite_instance, moto_server, s3):
    s3.create_bucket(Bucket="inbox-bucket")
    for key in ("in/q1.pdf", "in/q2.PDF", "in/readme.txt", "other/q3.pdf"):
        s3.put_object(Bucket="inbox-bucket", Key=key, Body=b"%PDF-1.4")
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    (clusters / "s3.yml").write_text(S3_CLUSTER.format(bucket="inbox-bucket", endpoint=moto_server))
    sensor = build_definitions(clusters).get_repository_def().get_sensor_def("acme__s3_inbox__s3")
    inputs, cursor = tick(sensor, sqlite_instance, None)
    assert sorted(i["file-path"] for i in inputs) == ["in/q1.pdf", "in/q2.PDF"]
    assert inputs[0]["uri"].startswith("s3://inbox-bucket/in/")
    assert tick(sensor, sqlite_instance, cursor)[0] == []
    s3.put_object(Bucket="inbox-bucket", Key="in/q4.pdf", Body=b"%PDF-1.4")
    inputs, _ = tick(sensor, sqlite_instance, cursor)
    assert [i["file-path"] for i in inputs] == ["in/q4.pdf"]

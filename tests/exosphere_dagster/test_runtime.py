"""Clusters run as real Dagster jobs on real instances (SQLite and Postgres)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from byo_satellites import read_calls

from clusters import cluster, failure_branch, fan_out, note, record, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file

pytestmark = pytest.mark.integration


def nested_cluster(
    tmp_path: Path,
    name: str,
    *,
    retries: int = 0,
    fail_for: list[str] = (),
    fail_rate: float = 0.0,
    failure: bool = False,
) -> Path:
    """One input fans out to 1 file x 10 pages x 10 chunks; ``record`` logs each chunk's path."""
    log_dir = tmp_path / "calls"
    log_dir.mkdir(exist_ok=True)
    label = (
        "$${{ satellites.files.output.label }}/${{ satellites.pages.output.label }}"
        "/$${{ satellites.chunks.output.label }}"
    )
    message = (
        "${{ failure.satellite }} ${{ failure.attempts }} $${{ satellites.files.output.label }}"
        " ${{ failure.error }}"
    )
    satellites = [
        fan_out("files", count=1, prefix="file-"),
        fan_out("pages", count=10, prefix="page-"),
        fan_out("chunks", count=10, prefix="chunk-"),
        record("record", label, log_dir, fail_for=list(fail_for), fail_rate=fail_rate),
    ]
    branch = failure_branch("pages", [note("note", log_dir, message)]) if failure else None
    spec = cluster(f"test/nested-{name}", satellites, retries=retries, delay=0, failure=branch)
    return write_cluster(tmp_path, f"{name}.yml", spec)


def run_tags(instance, result) -> dict[str, str]:
    return dict(instance.get_run_by_id(result.run_id).tags)


def test_nested_fan_out_produces_100_items_with_lineage(tmp_path, instance):
    path = nested_cluster(tmp_path, "fanout")
    result = run_cluster_file(path, instance=instance)
    assert result.success
    calls = read_calls(tmp_path / "calls")
    expected = {f"file-0/page-{p}/chunk-{c}" for p in range(10) for c in range(10)}
    assert Counter(calls) == Counter(expected)  # exactly 100, each once, lineage values right
    tags = run_tags(instance, result)
    assert (tags["exosphere/items"], tags["exosphere/succeeded"], tags["exosphere/routed"]) == (
        "100",
        "100",
        "0",
    )


def test_flaky_satellite_recovers_every_item_through_retries(tmp_path, sqlite_instance):
    path = nested_cluster(tmp_path, "flaky", retries=20, fail_rate=0.5)
    result = run_cluster_file(path, instance=sqlite_instance)
    assert result.success
    assert len(set(read_calls(tmp_path / "calls"))) == 100
    transient = read_calls(tmp_path / "calls", "attempt-failures-*")
    assert len(transient) > 20  # the satellite really failed about half its attempts


def test_always_failing_items_are_routed_with_lineage_and_error(tmp_path, instance):
    bad = ["file-0/page-1/chunk-2", "file-0/page-5/chunk-5", "file-0/page-9/chunk-0"]
    path = nested_cluster(tmp_path, "routed", retries=2, fail_for=bad, failure=True)
    result = run_cluster_file(path, instance=instance)
    assert result.success  # every failure had a handler
    assert sorted(read_calls(tmp_path / "calls")) == sorted(
        f"file-0/page-{p}/chunk-{c}"
        for p in range(10)
        for c in range(10)
        if f"file-0/page-{p}/chunk-{c}" not in bad
    )
    notes = sorted((tmp_path / "calls" / "failures.log").read_text().splitlines())
    assert notes == sorted(f"record 3 file-0 RuntimeError: cannot process {label}" for label in bad)
    tags = run_tags(instance, result)
    assert tags["exosphere/items"] == "100"
    assert int(tags["exosphere/succeeded"]) + int(tags["exosphere/routed"]) == 100
    assert (tags["exosphere/succeeded"], tags["exosphere/routed"], tags["exosphere/failed"]) == (
        "97",
        "3",
        "0",
    )


def test_an_item_that_fails_in_the_failure_branch_too_is_counted_once_as_failed(
    tmp_path, sqlite_instance
):
    """It was counted as routed and as failed, so the counts summed to 5 of 4 items."""
    label = "${{ satellites.files.output.label }}"
    log_dir = tmp_path / "calls"
    log_dir.mkdir()
    satellites = [
        fan_out("files", count=4, prefix="file-"),
        record("record", label, log_dir, fail_for=["file-1", "file-2"]),
    ]
    branch = failure_branch("record", [record("fallback", label, log_dir, fail_for=["file-2"])])
    spec = cluster("test/branch-fails", satellites, retries=0, delay=0, failure=branch)
    result = run_cluster_file(write_cluster(tmp_path, "branch.yml", spec), instance=sqlite_instance)
    assert not result.success  # the branch's own failure has no handler
    tags = run_tags(sqlite_instance, result)
    counts = [tags[f"exosphere/{k}"] for k in ("items", "succeeded", "routed", "failed")]
    assert counts == ["4", "2", "1", "1"]


def test_failure_without_handler_fails_the_run_after_finishing_the_rest(tmp_path, sqlite_instance):
    path = nested_cluster(tmp_path, "unhandled", fail_for=["file-0/page-3/chunk-3"])
    result = run_cluster_file(path, instance=sqlite_instance)
    assert not result.success
    assert len(read_calls(tmp_path / "calls")) == 99  # nothing else was lost
    failure, summary = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key.startswith("record[")  # the chunk step is red, naming the item
    text = failure.event_specific_data.error.message
    assert "chunk-3~" in text and "cannot process file-0/page-3/chunk-3" in text
    assert "succeeded, are checkpointed and went on" in text  # its chunk's good items
    assert summary.step_key == "exosphere__summary"  # it ran, counted the run, and failed it
    tags = run_tags(sqlite_instance, result)
    assert (tags["exosphere/items"], tags["exosphere/failed"]) == ("100", "1")


def test_items_travel_through_s3_when_configured(
    tmp_path, sqlite_instance, moto_server, s3, monkeypatch
):
    """EXOSPHERE_IO_S3_BUCKET sends step outputs (the item batches) to S3 (moto on loopback)."""
    s3.create_bucket(Bucket="exosphere-io")
    monkeypatch.setenv("EXOSPHERE_IO_S3_BUCKET", "exosphere-io")
    monkeypatch.setenv("EXOSPHERE_IO_S3_ENDPOINT_URL", moto_server)
    path = nested_cluster(tmp_path, "s3io")
    result = run_cluster_file(path, instance=sqlite_instance)
    assert result.success
    keys = [
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket="exosphere-io")
        for o in p.get("Contents", [])
    ]
    assert any(f"/{result.run_id}/record--c" in k for k in keys)
    assert len(read_calls(tmp_path / "calls")) == 100

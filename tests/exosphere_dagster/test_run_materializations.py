"""Each run records its item counts on the cluster's satellite assets, so the asset's history
(plotted by Dagster) shows in, succeeded, routed and failed per run."""

from __future__ import annotations

import pytest
from dagster import AssetKey

from clusters import cluster, failure_branch, fan_out, note, record, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file

pytestmark = pytest.mark.integration


def test_two_runs_leave_two_materializations_with_counts(tmp_path, sqlite_instance):
    log_dir = tmp_path / "calls"
    log_dir.mkdir()
    counted = cluster(
        "test/counted",
        [
            fan_out("items", count=4, prefix="item-"),
            record("record", "${{ satellites.items.output.label }}", log_dir, fail_for=["item-2"]),
        ],
        retries=0,
        failure=failure_branch("record", [note("note", log_dir, "${{ failure.error }}")]),
    )
    path = write_cluster(tmp_path, "counted.yml", counted)
    runs = [run_cluster_file(path, instance=sqlite_instance) for _ in range(2)]
    assert all(r.success for r in runs)
    records = sqlite_instance.fetch_materializations(
        AssetKey(["test__counted", "record"]), limit=10
    ).records
    assert {r.run_id for r in records} == {r.run_id for r in runs}
    for materialization in records:
        metadata = materialization.asset_materialization.metadata
        assert metadata["items_in"].value == 4
        assert metadata["succeeded"].value == 3
        assert metadata["routed"].value == 1
        assert metadata["unhandled"].value == 0

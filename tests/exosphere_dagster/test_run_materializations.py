"""Each run records its item counts on the cluster's satellite assets, so the asset's history
(plotted by Dagster) shows in, succeeded, routed and failed per run."""

from __future__ import annotations

import pytest
from dagster import AssetKey

from exosphere_dagster.entry.launch import run_cluster_file

pytestmark = pytest.mark.integration

CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: test/counted
  sla: 6h
  trigger: api-call
  retries: 0
  satellites:
    - uses: satellite/test/fan-out
      identifier: items
      config: {{count: 4, prefix: item-}}
    - uses: satellite/test/record
      identifier: record
      config:
        label: "${{{{ satellites.items.output.label }}}}"
        log_dir: {log_dir}
        fail_for: [item-2]
  failure:
    from: record
    satellites:
      - uses: satellite/test/note-failure
        identifier: note
        config: {{log_dir: {log_dir}, message: "${{{{ failure.error }}}}"}}
"""


def test_two_runs_leave_two_materializations_with_counts(tmp_path, sqlite_instance):
    (tmp_path / "calls").mkdir()
    path = tmp_path / "counted.yml"
    path.write_text(CLUSTER.format(log_dir=tmp_path / "calls"))
    runs = [run_cluster_file(path, instance=sqlite_instance) for _ in range(2)]
    assert all(r.success for r in runs)
    records = sqlite_instance.fetch_materializations(
        AssetKey(["test__counted", "record"]), limit=10
    ).records
    assert {r.run_id for r in records} == {r.run_id for r in runs}
    for record in records:
        metadata = record.asset_materialization.metadata
        assert metadata["items_in"].value == 4
        assert metadata["succeeded"].value == 3
        assert metadata["routed"].value == 1
        assert metadata["unhandled"].value == 0

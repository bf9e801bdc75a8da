"""``min-success-ratio``: a satellite may let some items fail without failing the run.

Below the ratio the run fails (its summary says where and why); at or above it the run
succeeds. Either way the failed items are counted, named in the step's log and metadata, and
a re-execution retries exactly them (checkpoints hand back the others).
"""

from __future__ import annotations

from collections import Counter

import pytest

from clusters import cluster, fan_out, record, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import rerun, run_cluster_file
from satellite_ops.registry import default_registry
from yaml_loader import ConfigErrors, load
from yaml_loader.python.api import Cluster, Satellite


def ratio_cluster(tmp_path, url: str, ratio: float | None, cause) -> str:
    extra = {} if ratio is None else {"min-success-ratio": ratio}
    satellites = [
        fan_out("items", count=3, prefix="item-"),
        {
            **record(
                "record",
                "${{ satellites.items.output.label }}",
                tmp_path,
                fail_for=["item-1"],
                fail_while=cause,
            ),
            **extra,
        },
        satellite_entry(
            "satellite/exospherehost/call-webhook",
            "deliver",
            {"url": url, "body": {"label": "${{ satellites.record.output.label }}"}},
        ),
    ]
    return write_cluster(tmp_path, "ratio.yml", cluster("test/ratio", satellites, retries=0))


def test_the_ratio_is_checked_where_it_is_written(tmp_path):
    path = ratio_cluster(tmp_path, "http://127.0.0.1:9/", 1.5, tmp_path / "cause")
    with pytest.raises(ConfigErrors) as caught:
        load(path)
    (error,) = caught.value.errors
    assert str(error).startswith(f"{path}:")
    assert "cluster.satellites[1].min-success-ratio: input should be less than or equal to 1" in (
        str(error)
    )


def test_the_python_api_writes_the_same_key(tmp_path, satellite_modules):
    satellite_modules("byo_satellites")
    items = Satellite(uses="satellite/test/fan-out", identifier="items")
    checked = Satellite(
        uses="satellite/test/record",
        identifier="record",
        config={"label": "x", "log_dir": str(tmp_path)},
        parents=[items],
        min_success_ratio=0.9,
    )
    plan = Cluster(
        identifier="test/py-ratio", sla="6h", trigger="api-call", satellites=[items, checked]
    ).plan(default_registry())
    assert plan.node("record").min_success_ratio == 0.9
    assert plan.node("items").min_success_ratio is None


@pytest.mark.integration
def test_above_the_ratio_the_run_succeeds_and_the_failed_item_is_counted_and_retryable(
    tmp_path, sqlite_instance, http_recorder
):
    cause = tmp_path / "cause"
    cause.write_text("broken")
    path = ratio_cluster(tmp_path, http_recorder.url, 0.6, cause)  # 2 of 3 = 0.67
    first = run_cluster_file(path, instance=sqlite_instance)
    assert first.success
    assert not [e for e in first.all_events if e.event_type_value == "STEP_FAILURE"]
    tags = sqlite_instance.get_run_by_id(first.run_id).tags
    assert (tags["exosphere/succeeded"], tags["exosphere/failed"]) == ("2", "1")
    errors = [r.user_message for r in sqlite_instance.all_logs(first.run_id) if r.level >= 40]
    assert any("item item-1~" in m and "counted against min-success-ratio 0.6" in m for m in errors)
    assert Counter(r.json["label"] for r in http_recorder.requests) == Counter(["item-0", "item-2"])

    cause.unlink()
    again = rerun(first.run_id, instance=sqlite_instance)  # every step; checkpoints skip the rest
    assert again.success
    assert Counter(r.json["label"] for r in http_recorder.requests) == Counter(
        ["item-0", "item-1", "item-2"]
    )
    tags = sqlite_instance.get_run_by_id(again.run_id).tags
    assert (tags["exosphere/succeeded"], tags["exosphere/failed"]) == ("3", "0")


@pytest.mark.integration
def test_below_the_ratio_the_run_fails_at_its_summary(tmp_path, sqlite_instance, http_recorder):
    cause = tmp_path / "cause"
    cause.write_text("broken")
    path = ratio_cluster(tmp_path, http_recorder.url, 0.9, cause)
    result = run_cluster_file(path, instance=sqlite_instance)
    assert not result.success
    failures = {
        e.step_key: e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    }
    assert list(failures) == ["exosphere__summary"]  # the chunk step itself stays green
    assert (
        "record: 2 of 3 item(s) succeeded, below its min-success-ratio 0.9"
        in failures["exosphere__summary"]
    )
    assert len(http_recorder.requests) == 2

"""Satellite config in a cluster job's run config: the file's values are the defaults, a launch
may edit them, and bad edits are refused (Dagster's own check at launch for types, the loader's
checks when the run starts, before any item runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from byo_satellites import read_calls
from dagster import DagsterInvalidConfigError, execute_job
from dagster._core.system_config.objects import ResolvedRunConfig

from clusters import cluster, fan_out, record, write_cluster
from exosphere_dagster.entry.launch import run_config
from exosphere_dagster.entry.reconstruct import reconstructable_job
from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.translate.job import build_job
from yaml_loader import load, plan

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def reference_job():
    registry = registry_with_plugins()
    return build_job(plan(load(EXAMPLES / "structured-pdfs-fixed.yml"), registry), registry)


def test_reference_job_config_holds_each_satellites_fields_with_file_defaults():
    job = reference_job()
    resolved = ResolvedRunConfig.build(job, {}).to_dict()["ops"]
    assert resolved["parse_pdf_with_docling"]["config"]["language"] == "en"
    assert resolved["deepseek_r1_distrill_llama_70b"]["config"]["temperature"] == 0.5
    assert resolved["call_webhook"]["config"]["method"] == "POST"
    assert "headers" not in resolved["call_webhook"]["config"]  # secrets stay out


@pytest.mark.parametrize(
    ("op", "key", "value"),
    [
        ("deepseek_r1_distrill_llama_70b", "temperature", "hot"),
        ("call_webhook", "method", "FETCH"),
        ("call_webhook", "url", "https://attacker.example/"),  # not editable: holds a secret
    ],
)
def test_a_launch_with_a_bad_value_is_refused_with_its_key_path(op, key, value):
    job = reference_job()
    with pytest.raises(DagsterInvalidConfigError) as refused:
        ResolvedRunConfig.build(job, {"ops": {op: {"config": {key: value}}}})
    text = str(refused.value)
    assert f"root:ops:{op}:config" in text and key in text


def _cluster(tmp_path: Path) -> Path:
    log_dir = tmp_path / "calls"
    log_dir.mkdir()
    edited = cluster(
        "test/edited",
        [
            fan_out("items", count=2, prefix="item-"),
            record("record", "${{ satellites.items.output.label }}", log_dir),
        ],
        retries=0,
    )
    return write_cluster(tmp_path, "edited.yml", edited)


def test_an_edited_value_is_used(tmp_path, sqlite_instance):
    path = _cluster(tmp_path)
    config = run_config([{}])
    config["ops"]["items"] = {"config": {"count": 3, "prefix": "edited-"}}
    config["ops"]["record"] = {"config": {"label": "${{ satellites.items.output.label }}!"}}
    with execute_job(reconstructable_job(path), sqlite_instance, run_config=config) as result:
        assert result.success
    assert sorted(read_calls(tmp_path / "calls")) == ["edited-0!", "edited-1!", "edited-2!"]


def test_an_edit_the_loader_would_refuse_fails_the_run_before_any_item(tmp_path, sqlite_instance):
    path = _cluster(tmp_path)
    config = run_config([{}])
    config["ops"]["record"] = {"config": {"label": "${{ satellites.nowhere.output }}"}}
    with execute_job(reconstructable_job(path), sqlite_instance, run_config=config) as result:
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "exosphere__start"
    assert "ops.record.config.label" in failure.event_specific_data.error.message
    assert read_calls(tmp_path / "calls") == []

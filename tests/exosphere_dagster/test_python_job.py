"""A satellite as an op in a hand-written Dagster job (examples/python_job.py), run for real
against the recording HTTP server on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest
from dagster import DagsterInvalidConfigError

from yaml_loader import ConfigErrors

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python_job.py"


def load_example(monkeypatch, url: str):
    monkeypatch.setenv("REPORTS_WEBHOOK", url)
    monkeypatch.setenv("HOOK_TOKEN", "tok-" + "x" * 12)
    spec = importlib.util.spec_from_file_location("python_job_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "python_job_example", module)
    spec.loader.exec_module(module)
    return module


def test_example_job_calls_the_webhook_once_per_object(monkeypatch, http_recorder, sqlite_instance):
    module = load_example(monkeypatch, f"{http_recorder.url}/hook")
    result = module.notify_reports.execute_in_process(instance=sqlite_instance)
    assert result.success
    bodies = sorted(r.json["report"] for r in http_recorder.requests)
    assert bodies == ["q1.pdf", "q2.pdf"]
    assert {r.header("Authorization") for r in http_recorder.requests} == {
        "Bearer tok-xxxxxxxxxxxx"
    }
    assert len(result.output_for_node("notify", "objects")) == 2
    snapshot = str(module.notify_reports.get_config_schema_snapshot())
    assert "tok-xxxx" not in snapshot and "HOOK_TOKEN" not in snapshot


def test_the_ops_config_is_typed_and_a_bad_value_refused(monkeypatch, http_recorder):
    module = load_example(monkeypatch, f"{http_recorder.url}/hook")
    with pytest.raises(DagsterInvalidConfigError, match="method"):
        module.notify_reports.execute_in_process(
            run_config={"ops": {"notify": {"config": {"method": "FETCH"}}}}
        )


def test_a_bad_satellite_config_is_reported_at_the_call_site():
    from exosphere_dagster import satellite_as_op

    line = inspect.currentframe().f_lineno + 2
    with pytest.raises(ConfigErrors) as errors:
        satellite_as_op("satellite/exospherehost/call-webhook", config={"methd": "POST"})
    text = str(errors.value)
    assert f"{__file__}:{line}:1: " in text and "methd" in text

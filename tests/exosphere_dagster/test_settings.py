"""Deployment settings: read once from the environment, checked, and reported by name."""

from __future__ import annotations

import pytest

from exosphere_dagster.resolve.settings import SettingsError, reload_settings, settings


def test_read_once_until_reloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOSPHERE_STEP_PODS", "40")
    assert settings().step_pods == 40
    monkeypatch.setenv("EXOSPHERE_STEP_PODS", "8")
    assert settings().step_pods == 40, "a process reads its settings once"
    assert reload_settings().step_pods == 8


def test_a_bad_value_names_the_variable_and_what_was_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOSPHERE_STEP_PODS", "many")
    monkeypatch.setenv("EXOSPHERE_EXECUTOR", "nomad")
    with pytest.raises(SettingsError) as caught:
        reload_settings()
    text = str(caught.value)
    assert "EXOSPHERE_STEP_PODS" in text and "'many'" in text
    assert "EXOSPHERE_EXECUTOR" in text and "'nomad'" in text


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXOSPHERE_STEP_PODS", "EXOSPHERE_EXECUTOR", "EXOSPHERE_IO_S3_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    current = reload_settings()
    assert current.step_pods == 16 and not current.runs_on_kubernetes
    assert current.io_s3_bucket is None and current.io_s3_prefix == "exosphere-io"

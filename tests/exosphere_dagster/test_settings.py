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


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EXOSPHERE_PLAN_CACHE_MAX_MB", "inf", "Input should be a finite number"),  # OverflowError
        ("EXOSPHERE_CHECKPOINT_S3_URL", "http://x", "expected s3://bucket/prefix"),  # at run time
        ("EXOSPHERE_CLUSTERS_DIR", "", "expected a folder or an s3://bucket/prefix, not an empty"),
        ("EXOSPHERE_CHECKPOINT_DIR", "{file}", "expected a folder"),  # every step failed
    ],
)
def test_values_that_used_to_fail_late_are_refused_with_the_others(
    monkeypatch: pytest.MonkeyPatch, tmp_path, name: str, value: str, message: str
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(name, value.format(file=tmp_path / "a-file"))
    with pytest.raises(SettingsError) as caught:
        reload_settings()
    assert f"{name}: {message}" in str(caught.value)


def test_an_empty_path_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blank value (a template that rendered nothing) is not the current folder."""
    for name in ("CHECKPOINT_DIR", "PLAN_CACHE_DIR", "PLACEMENT_FILE", "PRICES_FILE"):
        monkeypatch.setenv(f"EXOSPHERE_{name}", "")
    monkeypatch.setenv("EXOSPHERE_IO_S3_BUCKET", " ")
    current = reload_settings()
    assert current.checkpoint_dir is None and current.plan_cache_dir is None
    assert current.placement_file is None and current.prices_file is None
    assert current.io_s3_bucket is None


def test_a_bad_url_is_shown_without_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOSPHERE_CHECKPOINT_S3_URL", "https://AKIAKEY:s3cr3t@example.com/x")
    with pytest.raises(SettingsError) as caught:
        reload_settings()
    text = str(caught.value)
    assert "'https://***@example.com/x'" in text
    assert "s3cr3t" not in text and "AKIAKEY" not in text

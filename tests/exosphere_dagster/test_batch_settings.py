"""The deployment's Batch API settings (``EXOSPHERE_BATCH_*``) as the steps hand them to
satellites, and a clear error for a tier that does not exist."""

from __future__ import annotations

import pytest

from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.settings import SettingsError, settings


def batch_policy():
    """What a step hands its satellites: the deployment's policy, loaded from the environment."""
    return Deployment.load().batch_api


def test_defaults_allow_batches_for_24h_runs_only(monkeypatch):
    monkeypatch.delenv("EXOSPHERE_BATCH_TIERS", raising=False)
    policy = batch_policy()
    assert policy.tiers == frozenset({"24h"})
    assert (policy.reserve_seconds, policy.poll_seconds, policy.poll_max_seconds) == (3600, 5, 300)


def test_tiers_and_timings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("EXOSPHERE_BATCH_TIERS", " 12h, 24h ")
    monkeypatch.setenv("EXOSPHERE_BATCH_RESERVE_MINUTES", "90")
    monkeypatch.setenv("EXOSPHERE_BATCH_POLL_SECONDS", "2")
    policy = batch_policy()
    assert policy.tiers == frozenset({"12h", "24h"}) and policy.reserve_seconds == 5400
    assert policy.poll_seconds == 2


def test_an_empty_list_turns_batch_mode_off_and_an_unknown_tier_is_named(monkeypatch):
    monkeypatch.setenv("EXOSPHERE_BATCH_TIERS", "")
    assert batch_policy().tiers == frozenset()
    settings.cache_clear()
    monkeypatch.setenv("EXOSPHERE_BATCH_TIERS", "24h,48h")
    with pytest.raises(SettingsError) as caught:
        settings()
    assert "EXOSPHERE_BATCH_TIERS" in str(caught.value) and "48h" in str(caught.value)
    assert "6h, 12h, 24h" in str(caught.value)

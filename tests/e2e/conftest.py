"""Every end-to-end test runs with the satellites of e2e_satellites.py registered; the Dagster
instance (``sqlite_instance`` in ``dagster_home``, every file searchable) is in tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def e2e_satellites(satellite_modules):
    satellite_modules("e2e_satellites")

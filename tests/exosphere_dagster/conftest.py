"""Every test here runs with the bring-your-own satellites of byo_satellites.py registered;
instances and the other shared fixtures are in tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def byo_satellites(satellite_modules):
    satellite_modules("byo_satellites")

"""`exosphere schema`: a valid JSON Schema that accepts the examples and catches config typos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]


def cluster_schema() -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "exosphere_dagster.cli", "schema"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def test_schema_accepts_examples_and_rejects_typos():
    schema = cluster_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for example in sorted((ROOT / "examples").glob("*.yml")):
        document = yaml.safe_load(example.read_text())
        assert list(validator.iter_errors(document)) == [], example
    document = yaml.safe_load((ROOT / "examples" / "structured-pdfs-fixed.yml").read_text())
    document["cluster"]["satellites"][0]["config"]["bucktet"] = "x"
    document["cluster"]["sla"] = "5h"
    messages = [e.message for e in validator.iter_errors(document)]
    assert any("'bucktet' was unexpected" in m for m in messages)
    assert any("'5h'" in m for m in messages)
    uses = schema["$defs"]["SatelliteSpec"]["properties"]["uses"]["examples"]
    assert "satellite/exospherehost/call-webhook" in uses

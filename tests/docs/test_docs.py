"""The documentation builds with ``mkdocs build --strict`` (as CI runs it), its generated pages
cover every satellite, every format key and every error fixture, and every cluster example in
the docs and the README loads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from satellite_ops.registry import SatelliteRegistry, builtin_modules, define_satellite
from yaml_loader import plan
from yaml_loader.load import load_text
from yaml_loader.models import ClusterFile

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "yaml_loader" / "fixtures" / "bad"
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def builtin_registry() -> SatelliteRegistry:
    registry = SatelliteRegistry()
    registry.load_modules(builtin_modules(), source="built-in satellites")
    return registry


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


@pytest.mark.slow
def test_every_builtin_satellite_has_a_page_with_its_config_table(site):
    registry = builtin_registry()
    assert len(registry) >= 8
    index = (site / "satellites" / "index.html").read_text()
    for identifier in registry.identifiers():
        name = identifier.rsplit("/", 1)[-1]
        page = site / "satellites" / name / "index.html"
        assert page.is_file(), f"no page for {identifier}"
        html = page.read_text()
        assert identifier in html and identifier in index
        schema = registry.get(identifier).config_model.model_json_schema(by_alias=True)
        for key in schema.get("properties", {}):
            assert f"<code>{key}</code>" in html, f"{identifier}: config key {key} not documented"


@pytest.mark.slow
def test_format_reference_lists_every_key_of_the_models(site):
    html = (site / "reference" / "cluster-format" / "index.html").read_text()
    schema = ClusterFile.model_json_schema(by_alias=True)
    for name, definition in [("ClusterFile", schema), *schema["$defs"].items()]:
        for key in definition.get("properties", {}):
            assert f"<code>{key}</code>" in html, f"{name}.{key} missing from the reference"


@pytest.mark.slow
def test_error_catalogue_shows_every_fixture_with_its_message(site):
    html = (site / "reference" / "errors" / "index.html").read_text()
    fixtures = sorted(FIXTURES.glob("*.yml"))
    assert fixtures, "the bad-input fixtures moved: update docs/gen_errors.py"
    for path in fixtures:
        assert f"{path.name}:" in html, f"{path.name} has no example message in the catalogue"
    assert "is already defined in" in html  # the folder-level example
    assert "cannot import satellite module" in html


@pytest.mark.slow
def test_site_has_the_hand_written_pages(site):
    for page in (
        "getting-started",
        "concepts",
        "writing-satellites",
        "coming-from",
        "runtime",
        "triggers",
        "decisions",
    ):
        assert (site / page / "index.html").is_file(), page
    for optional in ("deployment", "sla"):
        if (REPO / "docs" / f"{optional}.md").exists():
            assert (site / optional / "index.html").is_file(), optional


def _cluster_blocks() -> list:
    blocks = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for i, match in enumerate(YAML_BLOCK.finditer(path.read_text())):
            text = match.group(1)
            if re.search(r"^version:", text, re.MULTILINE):
                where = f"{path.relative_to(REPO)}#{i}"
                blocks.append(pytest.param(where, text, id=where))
    return blocks


class _AnyConfig(BaseModel):
    model_config = ConfigDict(extra="allow")


def _stub(config, input):
    return [input]


@pytest.mark.parametrize(("where", "text"), _cluster_blocks())
def test_cluster_examples_in_the_docs_load(where, text):
    """Built-in satellites are checked for real; others (tour, your own) get a permissive stub."""
    registry = builtin_registry()
    for uses in set(re.findall(r"uses:\s*(satellite/[\w./-]+)", text)):
        if uses not in registry:
            registry.register(define_satellite(uses, _stub, _AnyConfig))
    plan(load_text(text, where), registry)

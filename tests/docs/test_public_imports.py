"""The docs show only the public surface: every Python block in ``docs/`` and the README imports
this project's names from a public module, and only names that module exports.

The rule: the public modules are the package roots ``exosphere_dagster``, ``satellite_ops`` and
``yaml_loader``, plus ``satellite_ops.helpers`` (what satellites share) and
``satellite_ops.testing`` (calling a satellite in a test); a name comes from one of them only
if it is in its ``__all__``. ``exosphere_dagster.entry``, ``.translate``, ``.runtime``,
``.resolve``, ``satellite_ops.registry`` and the other modules are the inside of the packages,
which a reader should never have to import.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OURS = ("exosphere_dagster", "satellite_ops", "yaml_loader")
PUBLIC_MODULES = (*OURS, "satellite_ops.helpers", "satellite_ops.testing")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])


def private_imports(code: str) -> list[str]:
    """Each import of one of our modules in ``code`` that is not public, as written."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            if module.split(".")[0] not in OURS:
                continue
            exported = _exports(module)
            for alias in node.names:
                if exported is None or alias.name not in exported:
                    found.append(f"from {module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                ours = alias.name.split(".")[0] in OURS
                if ours and alias.name not in PUBLIC_MODULES:
                    found.append(f"import {alias.name}")
    return found


def _exports(module: str) -> set[str] | None:
    if module not in PUBLIC_MODULES:
        return None
    return set(importlib.import_module(module).__all__)


def _blocks(page: Path) -> list[str]:
    return PYTHON_BLOCK.findall(page.read_text())


def test_the_docs_have_python_blocks_that_import_our_packages() -> None:
    """The scan sees what it checks (a pattern that matched nothing would pass every page)."""
    code = "\n".join(block for page in PAGES for block in _blocks(page))
    imported = {
        node.module
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OURS
    }
    assert {"exosphere_dagster", "satellite_ops", "satellite_ops.testing"} <= imported


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_python_block_imports_only_public_names(page: Path) -> None:
    problems = [
        f"block {number}: {use}"
        for number, block in enumerate(_blocks(page), start=1)
        for use in private_imports(block)
    ]
    assert not problems, f"{page.relative_to(REPO)} imports non-public names: {problems}"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("from exosphere_dagster.entry.launch import run_cluster_file", 1),
        ("from satellite_ops.registry import satellite", 1),
        ("import exosphere_dagster.translate.job", 1),
        ("from exosphere_dagster import build_cluster_now", 1),  # not exported
        ("from exosphere_dagster import run_cluster_file, Resources", 0),
        ("from satellite_ops.helpers import client_for\nimport dagster", 0),
        ("import satellite_ops.testing\nfrom yaml_loader import load", 0),
    ],
)
def test_the_rule(code: str, expected: int) -> None:
    assert len(private_imports(code)) == expected

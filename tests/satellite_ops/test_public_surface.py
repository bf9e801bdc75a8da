"""The built-in satellites are written with public names only, so any of them is a file to copy.

The rule: a satellite module imports from ``satellite_ops`` and ``satellite_ops.helpers`` only
names listed in their ``__all__``, and may build on another built-in satellite's public names
(``satellite_ops.satellites.<module>``, no leading underscore: the DeepSeek satellite is the LLM
one with a fixed model). ``satellite_ops.registry``, ``.config``, ``.context``, ``.helpers.<x>``
and the rest are the package's inside, free to change.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import satellite_ops
import satellite_ops.helpers

SATELLITES = Path(satellite_ops.__file__).parent / "satellites"
PUBLIC = {
    "satellite_ops": set(satellite_ops.__all__),
    "satellite_ops.helpers": set(satellite_ops.helpers.__all__),
}


def private_uses(source: str, filename: str = "<source>") -> list[str]:
    """``line: what`` for each use of a non-public ``satellite_ops`` name in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("satellite_ops"):
            module = node.module or ""
            for alias in node.names:
                if not _public(module, alias.name):
                    found.append(f"{node.lineno}: from {module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                module, _, name = alias.name.rpartition(".")
                if alias.name.startswith("satellite_ops.") and not _public(module, name):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "satellite_ops"
            and not _public("satellite_ops", node.attr)
        ):
            found.append(f"{node.lineno}: satellite_ops.{node.attr}")
    return found


def _public(module: str, name: str) -> bool:
    if module in PUBLIC:
        return name in PUBLIC[module] or f"{module}.{name}" == "satellite_ops.helpers"
    parent, _, satellite_module = module.rpartition(".")
    return (
        parent == "satellite_ops.satellites"
        and (SATELLITES / f"{satellite_module}.py").is_file()
        and not satellite_module.startswith("_")
        and not name.startswith("_")
    )


@pytest.mark.parametrize(
    "path", sorted(SATELLITES.glob("*.py")), ids=lambda p: p.name if isinstance(p, Path) else p
)
def test_builtin_satellites_import_only_public_names(path: Path) -> None:
    uses = private_uses(path.read_text(), str(path))
    assert not uses, f"{path.name} uses names outside the public surface: {uses}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from satellite_ops.registry import satellite", ["1: from satellite_ops.registry"]),
        ("from satellite_ops.helpers.s3_client import client_for", ["1: from satellite_ops.h"]),
        ("from satellite_ops import define_satellite", ["1: from satellite_ops import define"]),
        ("import satellite_ops.context", ["1: import satellite_ops.context"]),
        ("import satellite_ops\nsatellite_ops.registry.satellite", ["2: satellite_ops.registry"]),
        ("from satellite_ops.satellites.llm import _Reply", ["1: from satellite_ops.satellites"]),
        ("from satellite_ops import Resources, satellite", []),
        ("from satellite_ops.helpers import client_for, s3_errors", []),
        ("from satellite_ops.satellites.llm import LlmConfig", []),
    ],
)
def test_the_rule_refuses_private_names(source: str, expected: list[str]) -> None:
    uses = private_uses(source)
    assert len(uses) == len(expected)
    assert all(use.startswith(start) for use, start in zip(uses, expected, strict=True))


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_exists(module: str) -> None:
    package = importlib.import_module(module)
    assert package.__all__ == sorted(package.__all__), "keep __all__ sorted"
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert not missing, f"{module}.__all__ names what it does not have: {missing}"
    assert set(package.__all__) <= set(dir(package))


def test_one_resources_class() -> None:
    """What a satellite declares and what a Python cluster overrides are the same class."""
    import exosphere_dagster

    assert exosphere_dagster.Resources is satellite_ops.Resources

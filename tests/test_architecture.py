"""The codebase's shape: stage contracts (import-linter, configured in pyproject.toml), module
size, and the public API each package exports."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("yaml_loader", "satellite_ops", "exosphere_dagster")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 400


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _lint_broken_copy(root: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """The contracts run on a copy of the packages where ``module`` gains ``line``."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    target = root / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return _lint_imports(root)


def test_stage_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module", ["exosphere_dagster/runtime/items.py", "exosphere_dagster/resolve/tags.py"]
)
def test_contract_fails_when_resolve_or_run_imports_dagster(tmp_path: Path, module: str) -> None:
    """The contract itself: a copy of the tree whose resolve or run stage imports Dagster is
    refused, and the report names the module and the import."""
    result = _lint_broken_copy(tmp_path, module, "import dagster  # the violation under test")

    assert result.returncode != 0
    assert "resolve and run never import Dagster BROKEN" in result.stdout
    dotted = module.removesuffix(".py").replace("/", ".")
    assert f"{dotted} -> dagster" in result.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("exosphere_dagster/translate/ops.py", "from exosphere_dagster.entry import cli  # noqa"),
        (
            "exosphere_dagster/resolve/placement.py",
            "import exosphere_dagster.runtime.items  # noqa",
        ),
        ("exosphere_dagster/runtime/items.py", "import exosphere_dagster.translate.ops  # noqa"),
    ],
)
def test_contract_fails_when_a_stage_imports_a_later_one(
    tmp_path: Path, module: str, line: str
) -> None:
    result = _lint_broken_copy(tmp_path, module, line)

    assert result.returncode != 0
    assert "stages: entry points over translate over run over resolve BROKEN" in result.stdout


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_modules_stay_small() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) >= MAX_MODULE_LINES
    }
    assert not long, f"split these modules by responsibility (max {MAX_MODULE_LINES} lines): {long}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    assert exported == sorted(exported), "keep __all__ sorted"
    missing = [name for name in exported if getattr(module, name, None) is None]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"
    assert set(exported) <= set(dir(module))


def _documented_imports() -> set[tuple[str, str]]:
    """Every ``from <package> import name`` that README.md, docs/ and examples/ show users."""
    found: set[tuple[str, str]] = set()
    sources = [
        ROOT / "README.md",
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "examples").rglob("*.py"),
    ]
    names = rf"from ({'|'.join(PACKAGES)}) import (?:\(([\w\s,]+)\)|([\w ,]+)$)"
    pattern = re.compile(rf"^\s*{names}", re.M)
    for source in sources:
        for match in pattern.finditer(source.read_text()):
            for name in re.split(r"[,\s]+", match.group(2) or match.group(3)):
                if name:
                    found.add((match.group(1), name))
    return found


def test_every_public_name_users_are_shown_is_exported() -> None:
    documented = _documented_imports()
    assert documented, "README/docs/examples show no import: the pattern is broken"
    missing = [
        f"{package}.{name}"
        for package, name in sorted(documented)
        if name not in importlib.import_module(package).__all__
    ]
    assert not missing, f"shown to users but not in the package's __all__: {missing}"


def test_exosphere_dagster_map_names_its_exports_and_stages() -> None:
    import exosphere_dagster

    doc = exosphere_dagster.__doc__ or ""
    for name in exosphere_dagster.__all__:
        assert f"`{name}`" in doc, f"the package map does not mention {name}"
    stages = [
        p.name for p in (ROOT / "exosphere_dagster").iterdir() if (p / "__init__.py").exists()
    ]
    for stage in stages:
        assert stage in doc, f"the package map does not mention the {stage} folder"


def test_runtime_imports_without_dagster() -> None:
    """What the contract promises, checked in a fresh interpreter: importing every runtime
    module loads no Dagster module."""
    runtime = sorted(
        f"exosphere_dagster.runtime.{p.stem}"
        for p in (ROOT / "exosphere_dagster" / "runtime").glob("*.py")
        if p.stem != "__init__"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {runtime!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert ast.literal_eval(result.stdout.strip()) == []


def test_one_satellite_identifier_rule() -> None:
    """The registry and the cluster file's ``uses`` accept the same identifiers. The two
    packages may not import each other (docs/architecture.md, the contracts table), so the one
    rule is written twice and held equal here."""
    from satellite_ops.registry import IDENTIFIER_PATTERN
    from yaml_loader.text_forms import USES_RE

    assert IDENTIFIER_PATTERN.pattern == USES_RE.pattern


def test_the_loader_refuses_the_node_names_dagster_refuses() -> None:
    """yaml_loader does not import Dagster: its copy of Dagster's reserved names is held equal
    to Dagster's own here, so a pinned Dagster upgrade that adds one is noticed."""
    from dagster._core.definitions.utils import DISALLOWED_NAMES

    from yaml_loader.identity import DAGSTER_RESERVED

    assert DAGSTER_RESERVED == DISALLOWED_NAMES


def test_every_preloaded_module_exists() -> None:
    """The forkserver only logs a module it cannot import (entry/preload.py): a stale name there
    would silently send every step back to importing the product itself, cold."""
    from exosphere_dagster.entry.preload import PRODUCT_MODULES

    def found(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a missing parent package
            return False

    missing = [name for name in PRODUCT_MODULES if not found(name)]
    assert not missing, f"entry/preload.py PRODUCT_MODULES names missing modules: {missing}"
    for name in PRODUCT_MODULES:
        importlib.import_module(name)

"""Every code name the documentation gives exists: each dotted ``exosphere_dagster.``,
``yaml_loader.`` or ``satellite_ops.`` name imports (a module, or an attribute of one), and each
source path (``exosphere_dagster/translate/job.py``, ``resolve/segments.py``) is a file. The
docs stand alone: none of them cites a design document that is not in the repository."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("exosphere_dagster", "yaml_loader", "satellite_ops")
PAGES = sorted((REPO / "docs").rglob("*.md")) + [REPO / "README.md"]
DOTTED = re.compile(r"\b((?:exosphere_dagster|yaml_loader|satellite_ops)(?:\.[A-Za-z_]\w*)+)")
# a path inside one of the packages, written from the repository or from a package root
PATH = re.compile(r"(?<![\w/.:-])((?:[\w-]+/)+[\w-]+\.py)\b")
STAGES = ("translate", "resolve", "runtime", "entry", "components", "build")


def _names(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    found = {}
    for page in PAGES:
        for match in pattern.finditer(page.read_text()):
            found.setdefault(match.group(1), page.relative_to(REPO).as_posix())
    return sorted(found.items())


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def _path_exists(path: str) -> bool:
    first = path.split("/")[0]
    if first in PACKAGES or (REPO / first).is_dir() and first not in STAGES:
        return (REPO / path).is_file()
    if first in STAGES:  # written from the exosphere_dagster package
        return (REPO / "exosphere_dagster" / path).is_file()
    return True  # a user's path in an example (my_project/defs.py), not ours


@pytest.mark.parametrize(("name", "page"), _names(DOTTED))
def test_every_dotted_name_in_the_docs_imports(name: str, page: str) -> None:
    assert _resolves(name.rstrip(".")), f"{page} names {name}, which does not exist"


@pytest.mark.parametrize(("path", "page"), _names(PATH))
def test_every_source_path_in_the_docs_exists(path: str, page: str) -> None:
    assert _path_exists(path), f"{page} names {path}, which is not a file"


def test_the_name_checks_can_fail() -> None:
    assert not _resolves("exosphere_dagster.build.tags.deadline_for")
    assert not _resolves("exosphere_dagster.resolve.tags.deadline_for")
    assert _resolves("exosphere_dagster.resolve.tags.DEADLINE_TAG")
    assert not _path_exists("build/segments.py")
    assert _path_exists("resolve/segments.py")


def test_no_page_cites_a_design_document_outside_the_repository() -> None:
    citing = [
        f"{page.relative_to(REPO)}:{number}"
        for page in PAGES
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if "DESIGN.md" in line or re.search(r"\bDESIGN\b", line)
    ]
    assert not citing, f"the docs must stand alone; these lines cite DESIGN.md: {citing}"

"""Where a Python-built cluster value was written, so its errors can point there.

Every ``Cluster(...)``/``Satellite(...)`` records the file, line and column of the call that made
it (the caller's frame, outside this package and ``dataclasses``). An error found later in the
generated YAML is mapped back through that site; ``refine`` then walks the call's syntax tree
(keyword, dict key, list item, a nested call's keyword) to the line that wrote the bad value,
when it is written there.
Objects read from a YAML file keep that file's source map instead, and point into the file.
"""

from __future__ import annotations

import ast
import itertools
import linecache
import sys
from dataclasses import dataclass
from types import FrameType

from yaml_loader.errors import KeyPath
from yaml_loader.source import SourceMap

# frames of these modules are ours, not the user's call site
_INTERNAL_MODULES = frozenset(
    {
        "dataclasses",
        "yaml_loader.python.api",
        "yaml_loader.python.model",
        "yaml_loader.python.document",
    }
)


@dataclass(frozen=True)
class Site:
    """A call site (``end_*`` from the bytecode's positions) or a place in a YAML file."""

    file: str
    line: int
    column: int  # 1-based
    end_line: int | None = None
    end_column: int | None = None  # 0-based, exclusive (as ``ast`` counts)
    source: SourceMap | None = None  # set for objects read from YAML
    path: KeyPath = ()  # the object's key path in that YAML file


UNKNOWN = Site("<unknown>", 1, 1)


def capture() -> Site:
    """The site of the user's call that is constructing an object right now."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _internal(frame):
        frame = frame.f_back
    if frame is None:
        return UNKNOWN
    code = frame.f_code
    try:
        line, end_line, column, end_column = next(
            itertools.islice(code.co_positions(), frame.f_lasti // 2, None)
        )
    except (StopIteration, ValueError):
        line = end_line = column = end_column = None
    if line is None or column is None:
        return Site(code.co_filename, frame.f_lineno or 1, 1)
    return Site(code.co_filename, line, column + 1, end_line, end_column)


def _internal(frame: FrameType) -> bool:
    if frame.f_globals.get("__name__") in _INTERNAL_MODULES:
        return True
    # a dataclass's generated __init__ (its globals are those of the class's module)
    return frame.f_code.co_filename == "<string>" and frame.f_code.co_name == "__init__"


def traceback_site(tb: object, file: str) -> Site | None:
    """The innermost frame of a traceback that runs in ``file``, as a site."""
    found: Site | None = None
    while tb is not None:
        frame, lasti = tb.tb_frame, tb.tb_lasti  # type: ignore[attr-defined]
        if frame.f_code.co_filename == file:
            positions = itertools.islice(frame.f_code.co_positions(), lasti // 2, None)
            line, _, column, _ = next(positions, (None, None, None, None))
            found = Site(file, line or tb.tb_lineno, (column or 0) + 1)  # type: ignore[attr-defined]
        tb = tb.tb_next  # type: ignore[attr-defined]
    return found


def locate(site: Site, rest: KeyPath, keywords: dict[str, str]) -> tuple[str, int, int]:
    """File, line and column for the value at ``rest`` under the object made at ``site``.

    ``keywords`` maps the object's YAML keys to its Python keyword names.
    """
    if site.source is not None:
        pos = site.source.locate((*site.path, *rest))
        return site.source.file, pos.line, pos.column
    node = _call_at(site)
    if node is None or not rest:
        return site.file, site.line, site.column
    line, column = site.line, site.column
    current: ast.AST | None = None
    name = keywords.get(str(rest[0]))
    for keyword in node.keywords:
        if name is not None and keyword.arg == name:
            current, line, column = keyword.value, keyword.lineno, keyword.col_offset + 1
    for part in rest[1:]:
        current = _child(current, part)
        if current is None:
            break
        line, column = current.lineno, current.col_offset + 1
    return site.file, line, column


def _child(node: ast.AST | None, part: str | int) -> ast.expr | None:
    """The literal written for ``part`` inside a dict or list literal, or the keyword argument
    of a call such as ``Resources(cpu="lots")`` (``node-selector`` is ``node_selector=``)."""
    if isinstance(node, ast.Call) and isinstance(part, str):
        for keyword in node.keywords:
            if keyword.arg == part.replace("-", "_"):
                return keyword.value
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == part:
                return value
    if (
        isinstance(node, ast.List | ast.Tuple)
        and isinstance(part, int)
        and 0 <= part < len(node.elts)
        and not any(isinstance(e, ast.Starred) for e in node.elts)
    ):
        return node.elts[part]
    return None


def _call_at(site: Site) -> ast.Call | None:
    """The ``ast.Call`` that starts at the site, if the file's source can be read and parsed."""
    tree = _tree(site.file)
    if tree is None:
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and node.lineno == site.line
            and node.col_offset == site.column - 1
            and (site.end_line is None or node.end_lineno == site.end_line)
            and (site.end_column is None or node.end_col_offset == site.end_column)
        ):
            return node
    return None


_TREES: dict[str, tuple[tuple[str, ...], ast.Module | None]] = {}


def _tree(file: str) -> ast.Module | None:
    linecache.checkcache(file)
    lines = tuple(linecache.getlines(file))
    if not lines:
        return None
    cached = _TREES.get(file)
    if cached is not None and cached[0] == lines:
        return cached[1]
    try:
        tree: ast.Module | None = ast.parse("".join(lines), file)
    except (SyntaxError, ValueError):
        tree = None
    _TREES[file] = (lines, tree)
    return tree

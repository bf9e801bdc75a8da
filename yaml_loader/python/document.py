"""Typed cluster objects <-> the cluster YAML, and loader errors -> the Python that wrote them.

Writing: every typed object becomes the mapping the file format spells (keys in the order they
were read from YAML, else in field order; ``None`` and an empty ``config`` are left out), and a
value a cluster file cannot hold is a located problem rather than a crash. That mapping goes to
the loader as data (``source_map`` gives it one line per key or item, so loader messages that
name a line can be pointed back at Python): no YAML text is written to be parsed again.
Reading: the raw data of a file that passed the loader becomes the same objects, each
remembering its place in that file.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import MISSING, fields, replace
from typing import Any

import yaml

from yaml_loader.errors import ConfigError, ConfigErrors, KeyPath
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.python.model import (
    MAX_DEPTH,
    Failure,
    FolderTrigger,
    Located,
    Logs,
    S3Trigger,
    Satellite,
    Trigger,
    yaml_key,
)
from yaml_loader.python.sites import Site, locate
from yaml_loader.source import MAX_NODES, Position, SourceMap
from yaml_loader.syntax import LIMIT_HINT

GENERATED = "<generated from Python>"
_NESTED: dict[str, type[Located]] = {
    "trigger": Trigger,
    "s3": S3Trigger,
    "folder": FolderTrigger,
    "failure": Failure,
    "logs": Logs,
}
_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")
_DATA_TYPES = "a string, number, boolean, null, list or mapping"
_AT_LINE = re.compile(r"\bline (\d+)\b")
_WARNING_AT = re.compile(r"^(?P<file>.*?):(?P<line>\d+): ")


# -- writing -------------------------------------------------------------------------------
def to_document(cluster: Located) -> tuple[dict[str, Any], list[ConfigError]]:
    """The cluster file's data (``version``, ``cluster``), and the values it could not hold."""
    problems: list[ConfigError] = []
    version = _value(getattr(cluster, "version", None), ("version",), problems, 1)
    doc = {"version": version, "cluster": _mapping(cluster, ("cluster",), problems, ("version",))}
    order = getattr(cluster, "_doc_order", None) or ("version", "cluster")
    return {key: doc[key] for key in order}, problems


def _mapping(
    obj: Located, path: KeyPath, problems: list[ConfigError], skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    by_name = {f.name: f for f in fields(obj)}  # type: ignore[arg-type]
    written = [obj.keywords()[k] for k in obj._key_order or () if k in obj.keywords()]
    out: dict[str, Any] = {}
    for name in dict.fromkeys([*written, *by_name]):
        value = getattr(obj, name)
        default = by_name[name].default_factory
        if name in skip or value is None or (default is not MISSING and value == default()):
            continue
        key = yaml_key(name)
        out[key] = _value(value, (*path, key), problems, len(path))
    return out


def _value(value: Any, path: KeyPath, problems: list[ConfigError], depth: int) -> Any:
    if depth > MAX_DEPTH:
        problems.append(_problem(path, f"value is nested deeper than {MAX_DEPTH} levels"))
        return None
    if isinstance(value, Located):
        return _mapping(value, path, problems)
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):  # the reader refuses .nan/.inf
        problems.append(
            _problem(
                path,
                f"{value} is not a finite number",
                expected="a finite number (cluster files hold JSON numbers: no NaN or infinity)",
                hint="write a number, or the text in quotes",
            )
        )
        return None
    if isinstance(value, int) and not isinstance(value, bool) and not _printable(value):
        problems.append(
            _problem(
                path,
                "integer is too long",
                expected=f"at most {sys.get_int_max_str_digits()} digits",
                hint="write it as text",
            )
        )
        return None
    for kind in (str, bool, int, float):  # exact types: the YAML dumper knows no subclasses
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str):
                out[key] = _value(item, (*path, key), problems, depth + 1)
            else:
                found = f"{type(key).__name__} key {key!r}"
                problems.append(
                    _problem(path, "mapping keys must be strings", found=found, hint="quote it")
                )
        return out
    if isinstance(value, list | tuple):
        return [_value(item, (*path, i), problems, depth + 1) for i, item in enumerate(value)]
    problems.append(
        _problem(
            path,
            "this value cannot be written to a cluster file",
            expected=_DATA_TYPES,
            found=f"a {type(value).__module__}.{type(value).__qualname__}",
            hint="convert it first (str(...), float(...), a list or a dict)",
        )
    )
    return None


def _printable(value: int) -> bool:
    try:
        str(value)
    except ValueError:  # more digits than sys.get_int_max_str_digits()
        return False
    return True


def _problem(path: KeyPath, message: str, **extra: Any) -> ConfigError:
    return ConfigError(GENERATED, 1, 1, path, message, **extra)


class _Dumper(yaml.SafeDumper):
    """Block style, sequences indented under their key, multi-line text as ``|`` blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None  # PyYAML falls back to quotes where | cannot hold it
    if any(char in data for char in _UNICODE_BREAKS):
        style = '"'  # PyYAML writes them raw in '...' and plain scalars, where they fold
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _text)


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1_000_000,
    )


def source_map(document: dict[str, Any]) -> SourceMap:
    """Where each key and value of ``document`` stands, as if written one per line in order.

    The loader reads these positions for its messages ("also used at line 7") and the plan's
    node lines; ``relocate``/``relocate_plan`` turn each line back into the Python that wrote it.
    A document larger than a cluster file may be (``MAX_NODES``) is refused like the file.
    """
    source = SourceMap(GENERATED)
    line = 0

    def walk(value: Any, path: KeyPath) -> None:
        nonlocal line
        line += 1
        if line > MAX_NODES:
            message = f"document expands to more than {MAX_NODES} nodes"
            raise ConfigErrors([_problem(path, message, hint=LIMIT_HINT)])
        source.values.setdefault(path, Position(line, len(path) + 1))
        if isinstance(value, dict):
            for key, item in value.items():
                source.keys[(*path, key)] = Position(line + 1, len(path) + 1)
                walk(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*path, index))

    walk(document, ())
    return source


# -- reading -------------------------------------------------------------------------------
def from_document(cls: type[Located], data: dict[str, Any], source: SourceMap) -> Located:
    """Typed objects from the raw data of a file the loader accepted."""
    body = dict(data["cluster"])
    body["version"] = data["version"]
    cluster = _build(cls, body, source, ("cluster",))
    object.__setattr__(cluster, "_doc_order", tuple(data))
    object.__setattr__(cluster, "_key_order", tuple(k for k in data["cluster"]))
    return cluster


def _build(cls: type[Located], raw: dict[str, Any], source: SourceMap, path: KeyPath) -> Located:
    keywords = cls.keywords()
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        kwargs[keywords[key]] = _typed(key, value, source, (*path, key))
    obj = cls(**kwargs)
    pos = source.locate(path)
    object.__setattr__(
        obj, "_site", Site(source.file, pos.line, pos.column, None, None, source, path)
    )
    object.__setattr__(obj, "_key_order", tuple(raw))
    return obj


def _typed(key: str, value: Any, source: SourceMap, path: KeyPath) -> Any:
    if key == "satellites":
        return tuple(_build(Satellite, s, source, (*path, i)) for i, s in enumerate(value))
    if key == "api-call" and value in (None, {}):
        return True  # the loader reads `api-call:` and `api-call: {}` as "on"
    if key in _NESTED and isinstance(value, dict):
        return _build(_NESTED[key], value, source, path)
    return value


# -- errors back to where they were written -------------------------------------------------
def owner_of(cluster: Located, path: KeyPath) -> tuple[Located, KeyPath]:
    """The innermost typed object that wrote the value at ``path``, and the rest of the path."""
    if not path or path[0] != "cluster":
        return cluster, tuple(path)
    owner: Located = cluster
    rest = list(path[1:])
    while rest:
        name = owner.keywords().get(rest[0]) if isinstance(rest[0], str) else None
        value = getattr(owner, name) if name else None
        if isinstance(value, Located):
            owner, rest = value, rest[1:]
        elif (
            isinstance(value, tuple)
            and len(rest) > 1
            and isinstance(rest[1], int)
            and 0 <= rest[1] < len(value)
            and isinstance(value[rest[1]], Located)
        ):
            owner, rest = value[rest[1]], rest[2:]
        else:
            break
    return owner, tuple(rest)


def place(cluster: Located, path: KeyPath) -> tuple[str, int, int]:
    owner, rest = owner_of(cluster, path)
    return locate(owner.site, rest, owner.keywords())


def relocate(
    errors: list[ConfigError], cluster: Located, generated: SourceMap | None
) -> list[ConfigError]:
    """Loader errors about the generated YAML, pointed at the Python (or YAML) that wrote them."""
    lines = _line_paths(generated)
    out = []
    for error in errors:
        file, line, column = place(cluster, error.key_path)
        texts = {
            name: _reline(getattr(error, name), cluster, lines)
            for name in ("message", "found", "hint")
        }
        out.append(replace(error, file=file, line=line, column=column, **texts))
    return out


def relocate_plan(result: ClusterPlan, cluster: Located, generated: SourceMap) -> ClusterPlan:
    """The plan with the cluster's own file and each satellite's own line, as if read from it."""
    lines = _line_paths(generated)
    sites: dict[str, Site] = {}
    for branch in (cluster, cluster.failure, cluster.logs):  # type: ignore[attr-defined]
        for sat in getattr(branch, "satellites", None) or ():
            sites[sat.id] = sat.site

    def moved(node: SatelliteNode) -> SatelliteNode:
        site = sites[node.id]
        line, column = (site.line, site.column)
        if site.source is not None:
            pos = site.source.locate(site.path)
            line, column = pos.line, pos.column
        return replace(node, line=line, column=column)

    file = place(cluster, ())[0]
    warnings = tuple(_warning(w, cluster, lines) for w in result.warnings)
    return replace(
        result,
        file=file,
        nodes=tuple(map(moved, result.nodes)),
        failure_nodes=tuple(map(moved, result.failure_nodes)),
        log_nodes=tuple(map(moved, result.log_nodes)),
        warnings=warnings,
    )


def _line_paths(source: SourceMap | None) -> dict[int, KeyPath]:
    """Generated line -> the deepest key path written on it."""
    lines: dict[int, KeyPath] = {}
    if source is not None:
        for mapping in (source.values, source.keys):
            for path, pos in mapping.items():
                if len(path) >= len(lines.get(pos.line, ())):
                    lines[pos.line] = path
    return lines


def _reline(text: str | None, cluster: Located, lines: dict[int, KeyPath]) -> str | None:
    """``at line 12`` (of the generated YAML) -> ``at file.py:40``."""
    if text is None:
        return None

    def sub(match: re.Match[str]) -> str:
        path = lines.get(int(match.group(1)))
        if path is None:
            return match.group(0)
        file, line, _ = place(cluster, path)
        return f"{file}:{line}"

    return _AT_LINE.sub(sub, text)


def _warning(text: str, cluster: Located, lines: dict[int, KeyPath]) -> str:
    match = _WARNING_AT.match(text)
    if match is None or match.group("file") != GENERATED:
        return text
    path = lines.get(int(match.group("line")), ())
    file, line, _ = place(cluster, path)
    return f"{file}:{line}: " + text[match.end() :]

"""Cluster files for tests, written as data rather than as text.

``cluster(...)`` builds the mapping a cluster file holds, ``cluster_from(name, ...)`` starts from
a file in ``tests/fixtures/clusters/`` that several tests share, and ``write_cluster`` writes
either with PyYAML's safe dumper. Templates are plain strings (``"${{ run.id }}"``, no doubled
braces) and paths may be ``Path`` objects. ``fan_out``, ``record`` and ``note`` name the test
satellites of ``tests/exosphere_dagster/byo_satellites.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

import yaml

FIXTURES = Path(__file__).parent / "fixtures" / "clusters"
VERSION = "0.0.1b"


class _Dumper(yaml.SafeDumper):
    """``yaml.safe_dump``'s dumper that writes paths as strings and spells a repeated value out
    each time (no anchors), so the file reads as the test wrote it."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_multi_representer(PurePath, lambda dumper, path: dumper.represent_str(str(path)))


def satellite_entry(
    uses: str, identifier: str | None = None, config: Mapping[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """One entry of a ``satellites:`` list; ``fields`` are its other keys (``parents``,
    ``retries``, ``timeout``)."""
    entry: dict[str, Any] = {"uses": uses}
    if identifier is not None:
        entry["identifier"] = identifier
    entry.update(fields)
    if config is not None:
        entry["config"] = dict(config)
    return entry


def failure_branch(source: str, satellites: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``failure:`` block: items that fail at ``source`` or downstream of it go through
    ``satellites``."""
    return {"from": source, "satellites": list(satellites)}


def cluster(
    identifier: str,
    satellites: Iterable[Mapping[str, Any]],
    *,
    sla: str = "6h",
    trigger: str | Mapping[str, Any] = "api-call",
    secrets: Mapping[str, str] | None = None,
    failure: Mapping[str, Any] | None = None,
    logs: Iterable[Mapping[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A cluster file as a mapping. ``fields`` are further cluster keys (``retries``, ``delay``,
    ``tags``); ``secrets`` maps each name to its reference (``{"TOKEN": "env:VAR"}``)."""
    body: dict[str, Any] = {"identifier": identifier, "sla": sla, "trigger": trigger, **fields}
    if secrets is not None:
        body["secrets"] = [{name: ref} for name, ref in secrets.items()]
    body["satellites"] = list(satellites)
    if failure is not None:
        body["failure"] = dict(failure)
    if logs is not None:
        body["logs"] = {"satellites": list(logs)}
    return {"version": VERSION, "cluster": body}


def cluster_from(
    fixture: str, *, config: Mapping[str, Mapping[str, Any]] | None = None, **fields: Any
) -> dict[str, Any]:
    """The cluster in ``tests/fixtures/clusters/<fixture>.yml`` with cluster keys replaced
    (``identifier=..., retries=1``) and config values set per satellite identifier
    (``config={"record": {"log_dir": path}}``), in the main, failure or logs satellites."""
    data = yaml.safe_load((FIXTURES / f"{fixture}.yml").read_text())
    body = data["cluster"]
    body.update(copy.deepcopy(fields))
    entries = {
        entry.get("identifier"): entry
        for section in (body, body.get("failure") or {}, body.get("logs") or {})
        for entry in section.get("satellites", [])
    }
    for identifier, values in (config or {}).items():
        if identifier not in entries:
            raise KeyError(f"{fixture}.yml has no satellite {identifier!r}: {sorted(entries)}")
        entries[identifier].setdefault("config", {}).update(values)
    return data


def dump(data: Mapping[str, Any]) -> str:
    """The YAML text of a cluster mapping."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000)


def write_cluster(folder: Path, name: str, data: Mapping[str, Any] | str) -> Path:
    """Write a cluster (a mapping, or text as it is, e.g. a broken file) to ``folder/name``."""
    path = folder / name
    path.write_text(data if isinstance(data, str) else dump(data))
    return path


# -- the satellites of tests/exosphere_dagster/byo_satellites.py ---------------------------------


def fan_out(
    identifier: str | None = None, count: int | None = None, prefix: str | None = None
) -> dict[str, Any]:
    """``satellite/test/fan-out``: ``count`` objects per item, labelled ``<prefix><n>``."""
    config = {k: v for k, v in (("count", count), ("prefix", prefix)) if v is not None}
    return satellite_entry("satellite/test/fan-out", identifier, config or None)


def record(identifier: str, label: str, log_dir: str | Path, **config: Any) -> dict[str, Any]:
    """``satellite/test/record``: logs ``label`` once its call succeeds; ``config`` holds the
    ways to fail on purpose (``fail_for``, ``fail_rate``, ``fail_while``, ``block_on``)."""
    return satellite_entry(
        "satellite/test/record", identifier, {"label": label, "log_dir": log_dir, **config}
    )


def note(identifier: str, log_dir: str | Path, message: str) -> dict[str, Any]:
    """``satellite/test/note-failure``: appends ``message`` to ``<log_dir>/failures.log``."""
    return satellite_entry(
        "satellite/test/note-failure", identifier, {"log_dir": log_dir, "message": message}
    )

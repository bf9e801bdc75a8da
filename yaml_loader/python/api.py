"""Clusters in Python: the cluster file's keys as typed dataclasses, planned by the same loader.

    cluster = Cluster(identifier="aikin/reports", sla="6h", trigger=Trigger(cron="0 0 * * *"),
                      satellites=[Satellite(uses="satellite/exospherehost/get-files-from-s3", ...)])
    cluster.to_yaml()            # the cluster file; Cluster.from_yaml(text_or_path) reads one back
    cluster.plan(registry)       # ClusterPlan, through yaml_loader.load_document + yaml_loader.plan

Nothing is checked in Python: ``plan``/``validate`` hand the file's data (no YAML text) to the
real loader, so the checks and messages are the file's; each error is then pointed at the
``Satellite(...)`` or ``Cluster(...)`` call (the keyword, or the dict key, when written
literally) that made the value.
``load_python_clusters`` imports a Python file for ``exosphere clusters apply``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from yaml_loader.errors import ConfigError, ConfigErrors
from yaml_loader.ir import ClusterPlan
from yaml_loader.load import (
    YAML_SUFFIXES,
    LoadedCluster,
    load,
    load_document,
    load_text,
    missing_file_error,
)
from yaml_loader.models import SUPPORTED_VERSIONS
from yaml_loader.plan import SatelliteLookup
from yaml_loader.plan import plan as plan_loaded
from yaml_loader.python.document import (
    dump,
    from_document,
    relocate,
    relocate_plan,
    source_map,
    to_document,
)
from yaml_loader.python.model import (
    Failure,
    FolderTrigger,
    Located,
    Logs,
    Ref,
    S3Trigger,
    Satellite,
    Trigger,
    output,
    ref,
    secret,
)
from yaml_loader.python.sites import traceback_site
from yaml_loader.source import read_yaml_file, read_yaml_text

__all__ = [
    "Cluster",
    "Failure",
    "FolderTrigger",
    "Logs",
    "Ref",
    "S3Trigger",
    "Satellite",
    "Trigger",
    "load_python_clusters",
    "output",
    "ref",
    "secret",
]


@dataclass(frozen=True, kw_only=True)
class Cluster(Located):
    """A cluster file (``version`` + the ``cluster`` mapping) as one object."""

    _SEQUENCES = frozenset({"satellites"})

    version: str = SUPPORTED_VERSIONS[0]
    identifier: str  # project/name or cluster/project/name
    sla: Literal["6h", "12h", "24h"]
    trigger: Trigger | Literal["api-call"]
    title: str | None = None
    description: str | None = None
    retries: int | None = None  # default 5
    delay: float | str | None = None  # default retry delay: seconds, or "10s", "5m"
    secrets: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None
    tags: Mapping[str, str] | None = None
    satellites: Sequence[Satellite]
    logs: Logs | None = None
    failure: Failure | None = None

    def to_yaml(self) -> str:
        """The cluster file. Raises ConfigErrors (at the call site) for values YAML cannot hold."""
        document, problems = to_document(self)
        if problems:
            raise ConfigErrors(relocate(problems, self, None))
        return dump(document)

    @classmethod
    def from_yaml(cls, source: str | Path) -> Cluster:
        """A cluster from YAML text or a path (a ``Path``, a one-line string naming a file or
        ending in ``.yml``/``.yaml``); format errors as ConfigErrors, at the file's positions.

        Comments are not kept; key order and the spelling of every value are.
        """
        if isinstance(source, Path) or (
            "\n" not in source and (source.strip().endswith(YAML_SUFFIXES) or _names_a_file(source))
        ):
            load(source)  # the loader's own checks and messages, with the file's positions
            data, where = read_yaml_file(source)
        else:
            load_text(source)
            data, where = read_yaml_text(source, "<string>")
        return from_document(cls, data, where)  # type: ignore[return-value]

    def validate(self) -> None:
        """Check the cluster file format (no registry needed); raise located ConfigErrors."""
        self._loaded()

    def plan(self, registry: SatelliteLookup) -> ClusterPlan:
        """The ClusterPlan the same YAML file would give, positions pointing at this code."""
        loaded = self._loaded()
        try:
            result = plan_loaded(loaded, registry)
        except ConfigErrors as exc:
            raise ConfigErrors(relocate(exc.errors, self, loaded.source)) from None
        return relocate_plan(result, self, loaded.source)

    def _loaded(self) -> LoadedCluster:
        """The file's data, checked by the loader as data: errors at the Python call sites."""
        document, problems = to_document(self)
        if problems:
            raise ConfigErrors(relocate(problems, self, None))
        try:
            source = source_map(document)
        except ConfigErrors as exc:  # larger than a cluster file may be
            raise ConfigErrors(relocate(exc.errors, self, None)) from None
        try:
            return load_document(document, source)
        except ConfigErrors as exc:
            raise ConfigErrors(relocate(exc.errors, self, source)) from None


def _names_a_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a long one-line YAML text is no file name
        return False


def load_python_clusters(path: str | Path) -> list[Cluster]:
    """Import a Python file (under a module name of its own) and return the clusters it defines
    at module level, in order: ``Cluster`` values, and those inside module-level lists/tuples.
    The file is read for its clusters and nothing else: Dagster definitions beside them are
    ignored (never iterated, never loaded as jobs).

    The file's folder is on ``sys.path`` while it runs (for its sibling modules). A failure while
    importing is a ConfigErrors at the file's line, not a traceback; two clusters with the same
    identifier are an error too.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigErrors([missing_file_error(file)])
    name = _module_name(file)
    spec = importlib.util.spec_from_file_location(name, str(file))
    if spec is None or spec.loader is None:
        raise ConfigErrors([ConfigError(str(file), 1, 1, (), "not a Python file")])
    module = importlib.util.module_from_spec(spec)
    origin = spec.origin or str(file)  # the absolute path its code objects (and sites) carry
    folder = str(file.resolve().parent)
    sys.modules[name] = module
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except ConfigErrors:
        raise
    except SyntaxError as exc:
        raise ConfigErrors([_syntax_error(exc, origin)]) from None
    except (Exception, SystemExit) as exc:
        raise ConfigErrors([_import_error(exc, origin)]) from None
    finally:
        sys.modules.pop(name, None)
        if folder in sys.path:
            sys.path.remove(folder)
    clusters = _clusters_in(vars(module).values())
    _check_unique(clusters)
    return clusters


def _module_name(file: Path) -> str:
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", file.stem)
    return f"exosphere_clusters_{digest}_{stem}"


def _clusters_in(values: object) -> list[Cluster]:
    """The ``Cluster`` values among ``values`` and inside plain lists/tuples among them.

    Nothing else is touched: no attribute read, no iteration of other objects. A module may
    also hold Dagster ``Definitions``, jobs, assets or other ``@record`` objects (named tuples
    that refuse iteration), lazy proxies and so on; the type alone decides, so they are skipped.
    """
    found: dict[int, Cluster] = {}
    for value in values:  # type: ignore[attr-defined]
        items = value if type(value) in (list, tuple) else (value,)
        for item in items:
            if issubclass(type(item), Cluster):
                found.setdefault(id(item), item)
    return list(found.values())


def _check_unique(clusters: list[Cluster]) -> None:
    seen: dict[str, Cluster] = {}
    errors = []
    for cluster in clusters:
        key = str(cluster.identifier).removeprefix("cluster/")
        if key in seen:
            first = seen[key].site
            errors.append(
                ConfigError(
                    cluster.site.file,
                    cluster.site.line,
                    cluster.site.column,
                    ("cluster", "identifier"),
                    f"cluster '{key}' is defined twice in this file",
                    found=f"also defined at {first.file}:{first.line}",
                    hint="give each cluster its own identifier",
                )
            )
        seen.setdefault(key, cluster)
    if errors:
        raise ConfigErrors(errors)


def _syntax_error(exc: SyntaxError, file: str) -> ConfigError:
    text = (exc.text or "").strip()
    return ConfigError(
        exc.filename or file,
        exc.lineno or 1,
        exc.offset or 1,
        (),
        f"Python syntax error: {exc.msg}",
        found=text[:120] or None,
        hint="fix the syntax; `python -m py_compile FILE` shows the same error",
    )


def _import_error(exc: BaseException, file: str) -> ConfigError:
    site = traceback_site(exc.__traceback__, file)
    detail = str(exc)
    if len(detail) > 300:
        detail = detail[:297] + "..."
    kind = type(exc).__name__
    return ConfigError(
        file,
        site.line if site else 1,
        site.column if site else 1,
        (),
        f"importing the file raised {kind}" + (f": {detail}" if detail else ""),
        hint=f"fix the code at this line; `python {file}` shows the full traceback",
    )

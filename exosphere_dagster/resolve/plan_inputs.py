"""What planning a YAML cluster file depends on besides the file: one fingerprint of it, the
plan cache's key (plan_cache.py).

Planning (``yaml_loader.plan(load(path), registry)``) reads the file, its path and the satellite
registry, and runs our code under Python, pydantic and PyYAML. The fingerprint therefore holds:
the versions of Python, pydantic, pydantic-core, PyYAML (and whether libyaml parses), the YAML
reader in use; the source (content hash) of ``yaml_loader``, ``satellite_ops`` and
``exosphere_dagster``; and every registered satellite: its identifier, its function's and config
model's names, the config model's JSON schema, and the source of every package that defines the
function, the model or one of the model's bases (stdlib and pydantic are covered by versions).

A cache is only as good as the code that fills it: a process keys plans by the source on disk,
so it must run that source. A source file is hashed once per process and stat'ed again on each
fingerprint; a file that changed since, or that is dated after this process began loading, may
not be the code running: the fingerprint is then ``None`` (no cache for that load).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pydantic
import pydantic_core
import yaml

import yaml_loader.source
from satellite_ops.registry import SatelliteRegistry

logger = logging.getLogger("exosphere")
FORMAT = "exosphere-plan-cache/1"  # bump when what an entry holds changes shape
OWN_PACKAGES = ("yaml_loader", "satellite_ops", "exosphere_dagster")
VERSIONED = frozenset({"pydantic", "pydantic_core", "yaml", "builtins", "__future__"})


def _process_start_ns() -> int:
    """When this process started, less 2 s for the coarseness of the clock it is read from
    (Linux: /proc); else now, as this module is imported, which is later than the imports of
    the modules before it (a file saved in between would slip through)."""
    now = time.time_ns()
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/stat") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return now
    return min(now, int((boot + ticks / os.sysconf("SC_CLK_TCK") - 2) * 1e9))


_STARTED_NS = _process_start_ns()  # files newer than this may not be what this process imported

_LOCK = threading.Lock()
_SEEN: dict[Path, tuple[int, int, str]] = {}  # file -> (size, mtime_ns, sha256) at first look
_SCHEMAS: dict[type, object] = {}


class SourceMoved(Exception):
    """A source file changed while this process runs (or cannot be read): no fingerprint."""


def fingerprint(registry: SatelliteRegistry) -> str | None:
    """The digest of everything planning depends on besides the file; ``None`` when the code
    running may not be the code on disk (then nothing is cached)."""
    try:
        parts = {
            "format": FORMAT,
            "versions": _versions(),
            "yaml reader": yaml_loader.source.YAML_LOADER.__name__,
            "satellites": [_satellite(registry, i) for i in registry.identifiers()],
            "source": _packages_digest(_packages(registry)),
        }
    except SourceMoved as exc:
        logger.info("plan cache not used in this process: %s", exc)
        return None
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def source_moved(registry: SatelliteRegistry) -> str | None:
    """Why the code on disk may not be the code this process runs (ours, or a satellite's
    package: a file changed since this process first read it, or is newer than the process);
    ``None`` when it is the same. A code server restarts on it (entry/code_server.py)."""
    try:
        _packages_digest(_packages(registry))
    except SourceMoved as exc:
        return str(exc)
    return None


def _versions() -> dict[str, str]:
    try:
        dagster = importlib.metadata.version(
            "dagster"
        )  # read, not imported: resolve stays Dagster-free
    except importlib.metadata.PackageNotFoundError:
        dagster = "absent"
    return {
        "python": sys.version,
        "cache tag": str(sys.implementation.cache_tag),
        "pydantic": pydantic.VERSION,
        "pydantic-core": pydantic_core.__version__,
        "pyyaml": f"{yaml.__version__} libyaml={yaml.__with_libyaml__}",
        "dagster": dagster,
    }


def _satellite(registry: SatelliteRegistry, identifier: str) -> dict[str, object]:
    definition = registry.get(identifier)
    model = definition.config_model
    inputs = definition.input_model
    return {
        "identifier": identifier,
        "function": definition.location,
        "config model": f"{model.__module__}.{model.__qualname__}",
        "schema": _schema(model),
        "input schema": _schema(inputs) if inputs is not None else None,
        "declared": repr(  # what the decorator said, wherever the function lives
            (
                definition.batched,
                definition.fans_out,
                definition.max_concurrency,
                definition.resources,
                definition.is_async,
                definition.accepts_context,
                definition.log_sink is not None,
            )
        ),
    }


def _schema(model: type[pydantic.BaseModel]) -> object:
    """The model's JSON schema, made once per class and process (about 1 ms each)."""
    with _LOCK:
        if model in _SCHEMAS:
            return _SCHEMAS[model]
    try:
        schema: object = model.model_json_schema()
    except Exception:  # a type JSON Schema cannot show: its fields' reprs say as much
        schema = {name: repr(field) for name, field in model.model_fields.items()}
    with _LOCK:
        _SCHEMAS[model] = schema
    return schema


def _packages(registry: SatelliteRegistry) -> set[str]:
    """Top-level packages whose source planning may run: ours and each satellite's."""
    found = set(OWN_PACKAGES)
    for identifier in registry.identifiers():
        definition = registry.get(identifier)
        fn = definition.fn
        found.add(_top(getattr(fn, "__module__", None) or type(fn).__module__))
        for model in (definition.config_model, definition.input_model):
            for cls in model.__mro__ if model is not None else ():
                found.add(_top(cls.__module__))
    return {p for p in found if p not in VERSIONED and p not in sys.stdlib_module_names}


def _top(module: str) -> str:
    return module.partition(".")[0]


def _packages_digest(packages: Iterable[str]) -> dict[str, str]:
    return {name: _package_digest(sys.modules.get(name)) for name in sorted(packages)}


def _package_digest(module: ModuleType | None) -> str:
    """The hash of a module's file, or of every ``.py`` file under a package's folders."""
    if module is None:
        raise SourceMoved("a satellite's module is not imported")
    folders = list(getattr(module, "__path__", ()))
    if folders:
        files = sorted(p for folder in folders for p in Path(folder).rglob("*.py"))
    elif getattr(module, "__file__", None):
        files = [Path(module.__file__)]
    else:  # defined in __main__ or built at run time: no source to key by
        raise SourceMoved(f"module {module.__name__} has no source file")
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file}\0{_file_digest(file)}\0".encode())
    return digest.hexdigest()


def _file_digest(file: Path) -> str:
    try:
        stat = file.stat()
        with _LOCK:
            seen = _SEEN.get(file)
            if seen is None:
                if stat.st_mtime_ns > _STARTED_NS:
                    raise SourceMoved(f"{file} is newer than this process")
                seen = (
                    stat.st_size,
                    stat.st_mtime_ns,
                    hashlib.sha256(file.read_bytes()).hexdigest(),
                )
                _SEEN[file] = seen
    except OSError as exc:
        raise SourceMoved(f"{file}: {exc}") from None
    if seen[:2] != (stat.st_size, stat.st_mtime_ns):
        raise SourceMoved(f"{file} changed while this process runs")
    return seen[2]

"""Where satellites are declared and found: by identifier, from built-ins and plugin modules.

A satellite is a plain function plus metadata; the ``@satellite`` decorator records a
:class:`SatelliteDefinition` on the function and in a registry. Plugins are modules listed in
the ``exosphere.satellites`` entry-point group or in ``EXOSPHERE_SATELLITE_MODULES``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import logging
import os
import pkgutil
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from pydantic import BaseModel, RootModel

from satellite_ops.errors import (
    DuplicateSatelliteError,
    SatelliteDefinitionError,
    SatelliteImportError,
    UnknownSatelliteError,
)
from satellite_ops.resources import Resources

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "exosphere.satellites"
MODULES_ENV_VAR = "EXOSPHERE_SATELLITE_MODULES"
IDENTIFIER_PATTERN = re.compile(
    r"^satellite/[a-z0-9][a-z0-9_-]{0,99}/[a-z0-9][a-z0-9_.-]{0,99}\Z"
)  # = yaml_loader USES_RE
DEFINITIONS_ATTR = "__exosphere_satellites__"

BUILTIN_PACKAGE = "satellite_ops.satellites"


def builtin_modules() -> list[str]:
    """Every module of ``satellite_ops/satellites/``: a new satellite file needs no list entry."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    found = pkgutil.iter_modules(package.__path__, prefix=f"{BUILTIN_PACKAGE}.")
    return sorted(info.name for info in found if not info.name.rpartition(".")[2].startswith("_"))


F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class SatelliteDefinition:
    """Everything the runtime and the loader need to know about one satellite."""

    identifier: str
    fn: Callable[..., Any]
    config_model: type[BaseModel]
    is_async: bool = False
    accepts_context: bool = False
    batched: bool = False
    max_concurrency: int = 16
    resources: Resources = Resources()
    description: str = ""
    input_model: type[BaseModel] | None = None
    log_sink: Callable[[Any, list[dict]], None] | None = None
    fans_out: bool = False  # many objects per item: its children get fresh chunks (parallelism)

    def __post_init__(self) -> None:
        if not IDENTIFIER_PATTERN.match(self.identifier):
            raise SatelliteDefinitionError(
                f"satellite identifier '{self.identifier}' must look like "
                "'satellite/<project>/<name>' (lowercase letters, digits, '-' and '_'; at most "
                "100 of them for each of project and name)"
            )
        for name, model in (("config", self.config_model), ("input", self.input_model)):
            if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise SatelliteDefinitionError(
                    f"{self.identifier}: {name} model must be a pydantic BaseModel subclass, "
                    f"got {model!r}"
                )
        if issubclass(self.config_model, RootModel):
            raise SatelliteDefinitionError(
                f"{self.identifier}: config model must have named fields, got the RootModel "
                f"{self.config_model.__name__} (a cluster file's config is a mapping of keys): "
                "wrap it, e.g. 'class Config(BaseModel): values: dict[str, int]'"
            )
        if not isinstance(self.max_concurrency, int) or self.max_concurrency < 1:
            raise SatelliteDefinitionError(
                f"{self.identifier}: max_concurrency must be an integer >= 1"
            )

    @property
    def location(self) -> str:
        """``module.qualname`` of the function, for messages."""
        return f"{self.fn.__module__}.{getattr(self.fn, '__qualname__', repr(self.fn))}"

    @property
    def source(self) -> str:
        """``file:line`` where the function is declared (its first decorator's line), for
        located errors about the declaration; ``location`` when no code is found."""
        fn = inspect.unwrap(self.fn)
        code = getattr(fn, "__code__", None) or getattr(type(fn).__call__, "__code__", None)
        return f"{code.co_filename}:{code.co_firstlineno}" if code else self.location


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _description(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return next((line.strip() for line in doc.splitlines() if line.strip()), "")


def define_satellite(
    identifier: str,
    fn: Callable[..., Any],
    config: type[BaseModel],
    *,
    batched: bool = False,
    max_concurrency: int = 16,
    resources: Resources | None = None,
    input_model: type[BaseModel] | None = None,
    log_sink: Callable[[Any, list[dict]], None] | None = None,
    fans_out: bool = False,
) -> SatelliteDefinition:
    """Build a definition from a function, checking that its signature fits the contract."""
    if resources is not None and not isinstance(resources, Resources):
        raise SatelliteDefinitionError(
            f"{identifier}: resources must be satellite_ops.Resources(cpu=..., memory=..., "
            f"gpu=...), got {type(resources).__name__}"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise SatelliteDefinitionError(f"{identifier}: cannot inspect {fn!r}: {exc}") from None
    accepts_context = "context" in signature.parameters
    probe = ([],) if batched else (None, None)
    kwargs = {"context": None} if accepts_context and not batched else {}
    try:
        signature.bind(*probe, **kwargs)
    except TypeError:
        expected = "fn(items)" if batched else "fn(config, input[, context])"
        raise SatelliteDefinitionError(
            f"{identifier}: {fn.__qualname__}{signature} does not fit {expected}"
        ) from None
    return SatelliteDefinition(
        identifier=identifier,
        fn=fn,
        config_model=config,
        is_async=_is_async(fn),
        accepts_context=accepts_context,
        batched=batched,
        max_concurrency=max_concurrency,
        resources=resources or Resources(),
        description=_description(fn),
        input_model=input_model,
        log_sink=log_sink,
        fans_out=fans_out,
    )


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    # A reloaded module gives new function objects with the same name: not a conflict.
    return a is b or (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


class SatelliteRegistry:
    """Satellites by identifier. Thread-safe; registering the same function twice is a no-op."""

    def __init__(self, definitions: Iterable[SatelliteDefinition] = ()) -> None:
        self._definitions: dict[str, SatelliteDefinition] = {}
        self._lock = threading.RLock()
        for definition in definitions:
            self.register(definition)

    def register(self, definition: SatelliteDefinition) -> SatelliteDefinition:
        """Add ``definition``; a different function under a taken identifier is an error."""
        with self._lock:
            existing = self._definitions.get(definition.identifier)
            if existing is not None and not _same_function(existing.fn, definition.fn):
                raise DuplicateSatelliteError(
                    f"satellite '{definition.identifier}' is already registered by "
                    f"{existing.location}; {definition.location} cannot register it again"
                )
            self._definitions[definition.identifier] = definition
        return definition

    def get(self, identifier: str) -> SatelliteDefinition:
        """The definition for ``identifier``, or :class:`UnknownSatelliteError` with a hint."""
        try:
            return self._definitions[identifier]
        except KeyError:
            matches = difflib.get_close_matches(identifier, list(self._definitions), n=1)
            raise UnknownSatelliteError(identifier, matches[0] if matches else None) from None

    def __contains__(self, identifier: object) -> bool:
        return identifier in self._definitions

    def __len__(self) -> int:
        return len(self._definitions)

    def same_as(self, other: SatelliteRegistry) -> bool:
        """The same satellite definitions (the very objects) under the same identifiers: what
        a fresh registry of the same modules is (a code server's rebuild reuses clusters)."""
        mine, theirs = self._definitions, other._definitions
        return mine.keys() == theirs.keys() and all(mine[k] is theirs[k] for k in mine)

    def identifiers(self) -> list[str]:
        """All registered identifiers, sorted."""
        return sorted(self._definitions)

    def register_module(self, module: ModuleType) -> list[SatelliteDefinition]:
        """Register every ``@satellite`` function found at the top level of ``module``."""
        found: list[SatelliteDefinition] = []
        for value in list(vars(module).values()):
            definitions = getattr(value, DEFINITIONS_ATTR, None) if callable(value) else None
            if isinstance(definitions, tuple):
                for definition in definitions:
                    if isinstance(definition, SatelliteDefinition):
                        found.append(self.register(definition))
        return found

    def load_modules(
        self,
        names: Iterable[str],
        *,
        source: str,
        problems: list[SatelliteImportError] | None = None,
    ) -> None:
        """Import each module by name and register its satellites. A module that cannot be
        imported raises, or with ``problems`` is added there and the others still load."""
        for name in names:
            try:
                module = importlib.import_module(name)
            except Exception as exc:  # any failure inside the plugin is reported the same way
                _failed(SatelliteImportError(name, _reason(exc), source=source), problems)
                continue
            found = self.register_module(module)
            logger.debug("loaded %d satellite(s) from %s (%s)", len(found), name, source)

    def load_plugins(
        self, modules: str | None = None, *, problems: list[SatelliteImportError] | None = None
    ) -> None:
        """Import plugin modules: entry points of ``exosphere.satellites``, then the
        comma-separated ``modules`` (default: the ``EXOSPHERE_SATELLITE_MODULES`` variable).
        ``problems``: collect the plugins that cannot be imported instead of raising."""
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            source = f"entry point '{entry_point.name}' in group {ENTRY_POINT_GROUP}"
            try:
                loaded = entry_point.load()
            except Exception as exc:
                error = SatelliteImportError(entry_point.value, _reason(exc), source=source)
                _failed(error, problems)
                continue
            if isinstance(loaded, ModuleType):
                self.register_module(loaded)
            else:
                self.load_modules([entry_point.module], source=source, problems=problems)
                for definition in getattr(loaded, DEFINITIONS_ATTR, ()):
                    self.register(definition)
        if modules is None:
            modules, source = os.environ.get(MODULES_ENV_VAR, ""), MODULES_ENV_VAR
        else:
            source = "load_plugins argument"
        names = [name.strip() for name in modules.split(",") if name.strip()]
        self.load_modules(names, source=source, problems=problems)


def _failed(error: SatelliteImportError, problems: list[SatelliteImportError] | None) -> None:
    """A plugin that cannot be imported: raised, or kept in ``problems`` when the caller
    collects them (the others still load)."""
    if problems is None:
        raise error from None
    problems.append(error)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


_default = SatelliteRegistry()
_default_lock = threading.RLock()
_default_state = {"loaded": False, "loading": False}


def default_registry() -> SatelliteRegistry:
    """The process-wide registry: built-in satellites, then plugins, imported once.

    A failing plugin raises :class:`SatelliteImportError` here, and again on the next call.
    """
    with _default_lock:
        # "loading" guards a plugin that calls default_registry() while being imported.
        if not _default_state["loaded"] and not _default_state["loading"]:
            _default_state["loading"] = True
            try:
                _default.load_modules(builtin_modules(), source="built-in satellites")
                _default.load_plugins()
                _default_state["loaded"] = True
            finally:
                _default_state["loading"] = False
    return _default


def satellite(
    identifier: str,
    config: type[BaseModel],
    *,
    batched: bool = False,
    max_concurrency: int = 16,
    resources: Resources | None = None,
    input_model: type[BaseModel] | None = None,
    log_sink: Callable[[Any, list[dict]], None] | None = None,
    fans_out: bool = False,
    registry: SatelliteRegistry | None = None,
) -> Callable[[F], F]:
    """Declare ``fn(config, input[, context]) -> list[dict]`` (sync or async) a satellite.

    With ``batched=True`` the function is ``fn(items: list[BatchItem])`` and returns one
    ``list[dict]`` or exception per item. ``input_model`` describes the ``input:`` block (for
    load-time checks and docs); the function still receives the resolved mapping.
    ``fans_out=True`` says it returns many objects per item (pages of a file, rows of a table):
    its children then get fresh chunks, so the work spreads over more steps.
    """

    def decorate(fn: F) -> F:
        definition = define_satellite(
            identifier,
            fn,
            config,
            batched=batched,
            max_concurrency=max_concurrency,
            resources=resources,
            input_model=input_model,
            log_sink=log_sink,
            fans_out=fans_out,
        )
        (registry if registry is not None else _default).register(definition)
        previous = getattr(fn, DEFINITIONS_ATTR, ())
        setattr(fn, DEFINITIONS_ATTR, (*previous, definition))
        return fn

    return decorate

"""Call a satellite in a unit test the way the runtime calls it on an item of a cluster.

``call(satellite, config, input)`` validates ``config`` with the satellite's model (keys
written as in cluster files, ``output-format``, or in snake_case), builds a real
:class:`SatelliteContext` (a log the test can read, secrets, lineage), runs a sync or async
function, hands a batched one a one-item batch, and checks the outputs as the runtime does. So
a satellite needs no test-only branches: no ``Config | Mapping`` with ``coerce()``, no
``context=None``.

It calls once: retries, ``timeout:``, checkpoints and ``${{ }}`` templates belong to the runtime
(pass resolved values; test those with a cluster file and ``run_cluster_file``). Log lines are
kept as the satellite wrote them, not redacted, so a test can check that no secret is logged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import pickle
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from satellite_ops.config import describe_validation_error
from satellite_ops.context import BatchItem, SatelliteContext
from satellite_ops.registry import (
    DEFINITIONS_ATTR,
    SatelliteDefinition,
    SatelliteRegistry,
    default_registry,
)

__all__ = ["CallError", "CapturedLog", "call", "call_batch"]

LOGGER_NAME = "satellite_ops.testing"
Satellite = Callable[..., Any] | str | SatelliteDefinition


class CallError(ValueError):
    """The call cannot go as the runtime would run it: the config or input does not fit the
    satellite's models, or what the satellite returned is not what the runtime accepts."""


class CapturedLog(logging.Handler):
    """The log lines a satellite wrote through ``context.log`` during a call.

    ``records`` are the ``logging.LogRecord`` objects (each with ``item_id``); ``messages``
    their formatted text. Pass one as ``log=`` and read it after the call.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        """Every line's text, ``%`` arguments filled in."""
        return [record.getMessage() for record in self.records]

    def at(self, level: int | str) -> list[str]:
        """The text of the lines logged at ``level`` (``"WARNING"`` or ``logging.WARNING``)."""
        number = logging.getLevelName(level) if isinstance(level, str) else level
        return [r.getMessage() for r in self.records if r.levelno == number]


@dataclass(frozen=True)
class _Facts:
    """What the runtime knows about the items of one call besides their config and input."""

    definition: SatelliteDefinition
    log: logging.Logger
    secrets: Mapping[str, str]
    lineage: Mapping[str, dict]
    run_id: str
    cluster: str
    node_id: str | None
    attempt: int
    metrics: dict[str, float]

    def context(self, item_id: str) -> SatelliteContext:
        """The context of one item, as the runtime's ``_context`` builds it."""
        return SatelliteContext(
            log=logging.LoggerAdapter(self.log, {"item_id": item_id}),
            item_id=item_id,
            lineage=dict(self.lineage),
            secrets=dict(self.secrets),
            run_id=self.run_id,
            cluster=self.cluster,
            satellite=self.node_id or _name(self.definition),
            attempt=self.attempt,
            metrics=self.metrics,
        )


def call(
    satellite: Satellite,
    config: Mapping[str, Any] | BaseModel | None = None,
    input: Any = None,
    *,
    secrets: Mapping[str, str] | None = None,
    lineage: Mapping[str, dict] | None = None,
    log: CapturedLog | None = None,
    item_id: str = "item-1",
    run_id: str = "test-run",
    cluster: str = "test/cluster",
    node_id: str | None = None,
    attempt: int = 1,
    metrics: dict[str, float] | None = None,
    registry: SatelliteRegistry | None = None,
    check_input: bool = True,
) -> list[dict[str, Any]]:
    """Run ``satellite`` on one item and return its output objects; what it raises is raised.

    ``satellite`` is the ``@satellite`` function or its identifier (looked up in ``registry``,
    default: the process-wide one). ``config`` is the entry's ``config:`` with templates filled
    in; ``input`` the item's object (``input:`` block or parent output). ``secrets`` and
    ``lineage`` (ancestor identifier -> its object) reach ``context``; ``node_id`` is the
    entry's ``identifier:`` (default: the last part of the satellite identifier).
    ``check_input=False`` skips the ``input_model`` check, to test the satellite's own.
    A batched satellite gets a one-item batch; an exception it returns for the item is raised.
    """
    definition = _definition(satellite, registry)
    cfg = _config(definition, config)
    data = _input(definition, input, check_input)
    facts = _Facts(
        definition=definition,
        log=_logger(definition, log),
        secrets=secrets or {},
        lineage=lineage or {},
        run_id=run_id,
        cluster=cluster,
        node_id=node_id,
        attempt=attempt,
        metrics=metrics if metrics is not None else {},  # shared by the items, as in a step
    )
    context = facts.context(item_id)
    if definition.batched:
        (outcome,) = _outcomes(definition, [BatchItem(cfg, data, context)])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
    kwargs = {"context": context} if definition.accepts_context else {}
    return _outputs(definition, _run(definition.fn, cfg, data, **kwargs))


def call_batch(
    satellite: Satellite,
    config: Mapping[str, Any] | BaseModel | None,
    inputs: Sequence[Any],
    *,
    secrets: Mapping[str, str] | None = None,
    lineage: Mapping[str, dict] | None = None,
    log: CapturedLog | None = None,
    item_ids: Sequence[str] | None = None,
    run_id: str = "test-run",
    cluster: str = "test/cluster",
    node_id: str | None = None,
    attempt: int = 1,
    metrics: dict[str, float] | None = None,
    registry: SatelliteRegistry | None = None,
    check_input: bool = True,
) -> list[list[dict[str, Any]] | BaseException]:
    """Run a ``batched=True`` satellite once on a chunk of items sharing one ``config``.

    Returns one outcome per input, as the runtime settles them: the item's output objects, or
    the exception the satellite returned for it (an exception the whole call raises is raised).
    Item ids are ``item_ids`` or ``item-1``, ``item-2``...; other arguments are as in :func:`call`.
    """
    definition = _definition(satellite, registry)
    if not definition.batched:
        raise CallError(f"{definition.identifier} is not batched: test it with call()")
    ids = list(item_ids) if item_ids is not None else [f"item-{n + 1}" for n in range(len(inputs))]
    if len(ids) != len(inputs):
        raise CallError(f"{len(ids)} item_ids for {len(inputs)} inputs")
    cfg = _config(definition, config)
    facts = _Facts(
        definition=definition,
        log=_logger(definition, log),
        secrets=secrets or {},
        lineage=lineage or {},
        run_id=run_id,
        cluster=cluster,
        node_id=node_id,
        attempt=attempt,
        metrics=metrics if metrics is not None else {},  # shared by the items, as in a step
    )
    batch = [
        BatchItem(cfg, _input(definition, data, check_input), facts.context(item))
        for item, data in zip(ids, inputs, strict=True)
    ]
    return _outcomes(definition, batch)


# -- the runtime's steps, without the runtime ----------------------------------------------------
def _definition(satellite: Satellite, registry: SatelliteRegistry | None) -> SatelliteDefinition:
    if isinstance(satellite, SatelliteDefinition):
        return satellite
    if isinstance(satellite, str):
        return (registry if registry is not None else default_registry()).get(satellite)
    found: tuple[SatelliteDefinition, ...] = getattr(satellite, DEFINITIONS_ATTR, ())
    if registry is not None:
        found = tuple(d for d in found if d.identifier in registry)
    if len(found) == 1:
        return found[0]
    name = getattr(satellite, "__qualname__", repr(satellite))
    if not found:
        raise CallError(f"{name} is not a @satellite function (nor an identifier)")
    names = ", ".join(d.identifier for d in found)
    raise CallError(f"{name} is registered as {names}: pass the identifier to call")


def _config(definition: SatelliteDefinition, config: Mapping[str, Any] | BaseModel | None) -> Any:
    """The config as the runtime hands it over: validated by the satellite's model."""
    model = definition.config_model
    if isinstance(config, model):
        return config
    if isinstance(config, BaseModel):
        raise CallError(
            f"{definition.identifier} config: expected a mapping or a {model.__name__}, "
            f"got a {type(config).__name__}"
        )
    try:
        return model.model_validate(dict(config or {}))
    except ValidationError as exc:
        raise CallError(
            f"{definition.identifier} config: {describe_validation_error(exc)}"
        ) from None
    except TypeError:
        raise CallError(
            f"{definition.identifier} config: expected a mapping, got {type(config).__name__}"
        ) from None


def _input(definition: SatelliteDefinition, value: Any, check: bool) -> Mapping[str, Any]:
    """The item's object as the runtime passes it (a non-object as ``{"value": ...}``),
    checked against ``input_model`` when the satellite declares one."""
    data = {} if value is None else value if isinstance(value, Mapping) else {"value": value}
    if check and definition.input_model is not None:
        try:
            definition.input_model.model_validate(dict(data))
        except ValidationError as exc:
            raise CallError(
                f"{definition.identifier} input: {describe_validation_error(exc)}"
            ) from None
    return data


def _outcomes(
    definition: SatelliteDefinition, batch: list[BatchItem]
) -> list[list[dict[str, Any]] | BaseException]:
    raw = _run(definition.fn, batch)
    if not isinstance(raw, list) or len(raw) != len(batch):
        size = len(raw) if isinstance(raw, list) else "?"
        raise CallError(
            f"{definition.identifier} returned {type(raw).__name__} of {size} results for "
            f"{len(batch)} items: a batched satellite returns one result per item"
        )
    return [r if isinstance(r, BaseException) else _outputs(definition, r) for r in raw]


def _outputs(definition: SatelliteDefinition, result: Any) -> list[dict[str, Any]]:
    """``None`` is no output, one dict is one; anything else but a list of dicts is refused,
    and so are outputs that cannot be pickled (items travel pickled between steps)."""
    if result is None:
        return []
    if isinstance(result, dict):
        result = [result]
    if not (isinstance(result, list | tuple) and all(isinstance(o, dict) for o in result)):
        raise CallError(
            f"satellite {definition.identifier} must return a list of objects (dicts), "
            f"returned {type(result).__name__}"
        )
    outputs = [o if type(o) is dict else dict(o) for o in result]
    try:
        pickle.dumps(outputs)
    except Exception as exc:  # noqa: BLE001 - pickling runs the outputs' own code
        raise CallError(
            f"outputs of {definition.identifier} cannot be stored (pickled): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return outputs


def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` to completion, awaiting what it returns. Where an event loop is already
    running (an async test), the call runs in a worker thread, as the runtime's sync calls do."""

    def work() -> Any:
        result = fn(*args, **kwargs)
        return asyncio.run(_awaited(result)) if inspect.isawaitable(result) else result

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    with ThreadPoolExecutor(1, thread_name_prefix="satellite-call") as pool:
        return pool.submit(work).result()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _logger(definition: SatelliteDefinition, captured: CapturedLog | None) -> logging.Logger:
    """A fresh logger per call: it feeds ``captured`` and propagates to ``satellite_ops.testing``
    (so pytest's ``caplog`` sees the lines too)."""
    logger = logging.Logger(f"{LOGGER_NAME}.{_name(definition)}", logging.DEBUG)
    logger.parent = logging.getLogger(LOGGER_NAME)
    if captured is not None:
        logger.addHandler(captured)
    return logger


def _name(definition: SatelliteDefinition) -> str:
    """``call-webhook`` of ``satellite/exospherehost/call-webhook``: a cluster entry's default
    ``identifier:``."""
    return definition.identifier.rsplit("/", 1)[-1]

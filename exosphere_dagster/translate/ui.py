"""What a person reads in Dagster's UI about our ops: the named types on their inputs and
outputs, op descriptions, failure messages that start with the item, and USD amounts.

* Types: a chunk, a chunk's reports and a segment's manifest are named Dagster types with a
  description (the op's Types tab and its input/output rows), not ``Any``.
* Failures: Dagster shows a raised ``Failure`` as ``dagster._core.definitions.events.Failure:
  <text>`` (Python's ``module.Class: message`` line). Our failure classes say what happened in
  their name (``ItemFailed: input.0.1~... at 'picky': ValueError: ...``).
* Money: a step's cost is often below a millionth of a dollar, which the UI shows as ``3.7e-7``;
  :func:`usd_text` writes it in plain decimals (``0.00000037``) for tags and metadata.
"""

from __future__ import annotations

import math
from typing import Any

from dagster import DagsterType, Failure

from exosphere_dagster.runtime.items import Chunk, ChunkReport

CHUNK_KEYS = (
    "A step's key ends in its chunk: `{op}[c00000]` runs `{op}` over chunk c00000, the first "
    "chunk of items of its segment (c00001 the second, ...). Each chunk is one step per "
    "satellite: chunks run in parallel, and a failed item reddens only its own chunk's step."
)


def _is(kind: type) -> Any:
    return lambda _context, value: isinstance(value, kind)


CHUNK_TYPE = DagsterType(
    type_check_fn=_is(Chunk),
    name="ExosphereChunk",
    description="A chunk of items (objects with their lineage and stable ids) that one mapped "
    "step works on; its mapping key (c00000, c00001, ...) ends the step's key.",
    typing_type=Chunk,
)
REPORTS_TYPE = DagsterType(
    type_check_fn=lambda _context, value: all(
        isinstance(r, ChunkReport) for r in (value if isinstance(value, list) else [value])
    ),
    name="ExosphereChunkReports",
    description="What happened to a chunk: items in, succeeded, failed (with their errors), "
    "resumed from checkpoints, and cost; this satellite's and those before it in the chunk. "
    "The summary adds them up.",
)
MANIFEST_TYPE = DagsterType(
    type_check_fn=_is(dict),
    name="ExosphereManifest",
    description="Which items went into which chunk of a segment: the summary compares it with "
    "the chunk reports and runs inline any chunk whose step never ran.",
)


def _shown_as(cls: type[Failure]) -> type[Failure]:
    """Python prints an exception as ``module.Class: message`` unless its module is ``builtins``:
    the class name alone reads as the first words of the failure in Dagster's UI."""
    cls.__module__ = "builtins"
    return cls


@_shown_as
class ItemFailed(Failure):
    """Items of a chunk failed at a satellite with no failure branch to take them."""


@_shown_as
class ItemsFailed(Failure):
    """The run's summary: items failed with no handler (or below ``min-success-ratio``)."""


@_shown_as
class InvalidRunConfig(Failure):
    """A run's edited satellite config is invalid; no item ran."""


def op_description(node: Any, definition: Any) -> str:
    """A satellite op's description: the satellite's docstring and its config model's, under
    the full identifier (the graph shows only the short node name)."""
    lines = [f"Satellite **{node.id}** (`{node.uses}`)."]
    if definition is not None and definition.description:
        lines.insert(0, definition.description)  # the graph's node shows the first line
    model = getattr(definition, "config_model", None)
    doc = (model.__doc__ or "").strip() if model is not None else ""
    if doc and not doc.startswith(f"{model.__name__}("):  # pydantic's generated docstring
        lines.append(f"Config ({model.__name__}): {doc}")
    lines.append(CHUNK_KEYS.format(op=node.op_name))
    return "\n\n".join(lines)


def usd_text(amount: float) -> str:
    """``3.7e-07`` -> ``0.00000037``: plain decimals to the 1e-8 USD our costs are rounded to
    (resolve/cost), no trailing zeros; float() reads it back."""
    if not math.isfinite(amount):
        return str(amount)
    text = f"{amount:.8f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def shown_usd(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with every USD amount (keys ending in ``usd``) as plain-decimal text."""
    from dagster import MetadataValue

    return {
        key: MetadataValue.text(usd_text(value))
        if key.endswith("usd") and isinstance(value, float | int)
        else value
        for key, value in metadata.items()
    }


def read_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Dagster metadata entries as plain values, USD amounts (text here) back as numbers: what
    scripts and tests that add costs up read."""
    values = {key: getattr(entry, "value", entry) for key, entry in metadata.items()}
    return {
        key: float(value) if key.endswith("usd") and isinstance(value, str) else value
        for key, value in values.items()
    }

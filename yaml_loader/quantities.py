"""Compute quantities, parsed once: what ``resources:`` may say, and the numbers it means.

Kubernetes quantity syntax (``k8s.io/apimachinery`` ``resource.Quantity``), non-negative:
a decimal number (``2``, ``0.5``, ``.5``) with at most one suffix, binary (``Ki Mi Gi Ti Pi
Ei``), decimal (``n u m k M G T P E``) or an exponent (``1e9``, ``5E3``).

- ``cpu``: cores (``500m`` = 0.5, ``2``); ``memory``: bytes (``512Mi``, ``1G``, ``1e9``);
  ``gpu``: a whole number of devices, 0 to ``MAX_GPUS``.
- ``parse_quantity`` / ``cpu_cores`` / ``memory_bytes`` / ``gpu_count`` raise
  ``QuantityError`` (a ``ValueError``) whose text says what was found, the expected form and a
  fix; the file model turns it into a located error. Placement and cost read the numbers
  through these functions, never their own pattern.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_GPUS = 16
_NUMBER = r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SUFFIX = r"Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+"
_QUANTITY = re.compile(rf"^(?P<number>{_NUMBER})(?P<suffix>{_SUFFIX})?\Z")
QUANTITY_PATTERN = rf"^\s*{_NUMBER}({_SUFFIX})?\s*$"  # the same, as JSON Schema writes it
QUANTITY_SCHEMA = {  # what ``exosphere schema`` says a cpu or memory value may be
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": QUANTITY_PATTERN}]
}
_FACTORS: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{
        unit: Decimal(2) ** (10 * (i + 1))
        for i, unit in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))
    },
}
FORMS = {
    "cpu": "a Kubernetes CPU quantity: cores as a number or millicores, e.g. '500m', '2', '0.5'",
    "memory": "a Kubernetes memory quantity in bytes, e.g. '512Mi', '2Gi', '1G', '1e9'",
    "gpu": f"a whole number of GPUs from 0 to {MAX_GPUS}, e.g. 1",
}
FIXES = {
    "cpu": "write cores as a number ('2', '0.5') or millicores ('500m')",
    "memory": "use a unit Kubernetes knows: Ki, Mi, Gi, Ti (powers of 1024) or k, M, G, T",
    "gpu": "GPUs are whole devices: write 0, 1, 2, ...",
}


class QuantityError(ValueError):
    """A value that is not the quantity its key needs: ``str()`` is the whole explanation."""

    def __init__(self, key: str, value: Any, problem: str) -> None:
        self.key, self.value, self.problem = key, value, problem
        self.expected, self.hint = FORMS.get(key, FORMS["memory"]), FIXES.get(key)
        super().__init__(f"{key}: {problem} (expected {self.expected}; {self.hint})")


def _text(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(
            key, value, f"{type(value).__name__} {_shown(repr(value))} is not a quantity"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise QuantityError(key, value, f"{value!r} is not a finite number")
    return str(value).strip()


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def parse_quantity(value: Any, key: str = "memory") -> Decimal:
    """A non-negative Kubernetes quantity as an exact number (``"500m"`` -> 0.5)."""
    text = _text(key, value)
    found = _QUANTITY.match(text)
    if not found:
        problem = f"{_shown(text)} is not a Kubernetes quantity"
        if text.startswith("-"):
            problem = f"{_shown(text)} is negative"
        raise QuantityError(key, value, problem)
    suffix = found["suffix"] or ""
    try:
        if suffix[:1] in ("e", "E"):
            number = Decimal(found["number"]).scaleb(int(suffix[1:]))
        else:
            number = Decimal(found["number"]) * _FACTORS[suffix]
    except (ArithmeticError, ValueError):
        number = Decimal("NaN")
    if not number.is_finite() or not math.isfinite(float(number)):
        raise QuantityError(key, value, f"{_shown(text)} is out of range")
    return number


def cpu_cores(value: Any) -> float:
    """``"500m"`` -> 0.5, ``2`` -> 2.0."""
    return float(parse_quantity(value, "cpu"))


def memory_bytes(value: Any) -> float:
    """``"1Gi"`` -> 1073741824.0, ``"1G"`` -> 1e9."""
    return float(parse_quantity(value, "memory"))


def gpu_count(value: Any) -> int:
    """A whole, non-negative number of GPUs (``"2"`` and ``2`` alike); 1.5 or -1 are refused."""
    number = parse_quantity(value, "gpu")
    if number != number.to_integral_value():
        raise QuantityError("gpu", value, f"{value!r} is not a whole number")
    if number > MAX_GPUS:
        raise QuantityError("gpu", value, f"{value!r} is more than {MAX_GPUS}")
    return int(number)


def normalised(key: str, value: Any) -> str | int | None:
    """A ``resources:`` value once checked: cpu and memory as text (``2`` -> '2'), gpu as an
    integer (``"2"`` -> 2)."""
    if value is None:
        return None
    if key == "gpu":
        return gpu_count(value)
    {"cpu": cpu_cores, "memory": memory_bytes}[key](value)
    return str(value).strip()


@dataclass(frozen=True)
class Compute:
    """One step's requests as numbers: what placement shows and cost prices."""

    cpu: float = 0.0  # cores
    memory_bytes: float = 0.0
    gpu: int = 0

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / 2**30


def compute_of(cpu: Any = None, memory: Any = None, gpu: Any = None) -> Compute:
    """The numbers of a step's requests (absent values count as 0)."""
    return Compute(
        cpu=cpu_cores(cpu) if cpu not in (None, "") else 0.0,
        memory_bytes=memory_bytes(memory) if memory not in (None, "") else 0.0,
        gpu=gpu_count(gpu) if gpu not in (None, "") else 0,
    )

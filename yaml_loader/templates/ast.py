"""Syntax tree of one expression: frozen, comparable, and carrying source offsets.

Property paths and operator chains are flat (a tuple of segments or operands), so a long
``a.b.c...`` or ``x || y || z ...`` costs no recursion when it is evaluated or walked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Literal:
    """A string, number, true, false or null written in the expression."""

    value: Any
    offset: int


@dataclass(frozen=True)
class Context:
    """A root name such as ``satellites`` or ``secrets``, read from the scope."""

    name: str
    offset: int


@dataclass(frozen=True)
class Path:
    """``base.name[index]...``: each segment is the key expression (``.name`` is a Literal)."""

    base: Node
    segments: tuple[Node, ...]
    offset: int


@dataclass(frozen=True)
class Call:
    """A call of an allowlisted function; ``name`` is the canonical spelling."""

    name: str
    args: tuple[Node, ...]
    offset: int


@dataclass(frozen=True)
class Not:
    """``!operand``."""

    operand: Node
    offset: int


@dataclass(frozen=True)
class Chain:
    """Operators of one precedence level applied left to right: ``first op1 x1 op2 x2 ...``."""

    first: Node
    rest: tuple[tuple[str, Node], ...]
    offset: int


Node = Literal | Context | Path | Call | Not | Chain

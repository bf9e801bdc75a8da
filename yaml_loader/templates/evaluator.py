"""Evaluate a syntax tree against a scope: a pure function of the tree and plain data.

Missing properties and out-of-range indexes read as null (as in GitHub), so an optional
field of a satellite output does not fail a run; only function misuse raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from yaml_loader.templates.ast import Call, Chain, Context, Literal, Node, Not, Path
from yaml_loader.templates.errors import TemplateEvaluationError
from yaml_loader.templates.functions import FUNCTIONS, truthy

_KEY_TYPES = (str, int, float, bool, type(None))


def evaluate(node: Node, scope: Mapping[str, Any]) -> Any:
    """The value of ``node`` with roots read from ``scope`` (``{"satellites": {...}, ...}``)."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Context):
        return scope.get(node.name)
    if isinstance(node, Path):
        value = evaluate(node.base, scope)
        for segment in node.segments:
            value = index(value, evaluate(segment, scope))
        return value
    if isinstance(node, Not):
        return not truthy(evaluate(node.operand, scope))
    if isinstance(node, Chain):
        return _chain(node, scope)
    if isinstance(node, Call):
        return _call(node, scope)
    raise TypeError(f"not a template syntax node: {node!r}")


def index(value: Any, key: Any) -> Any:
    """``value[key]`` with GitHub's forgiveness: anything that does not fit reads as null."""
    if isinstance(value, Mapping):
        return value.get(key) if isinstance(key, _KEY_TYPES) else None
    if isinstance(value, list | tuple):
        if isinstance(key, float) and math.isfinite(key) and key.is_integer():
            key = int(key)
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(value):
            return value[key]
    return None


def compare(operator: str, left: Any, right: Any) -> bool:
    """Python equality; ordering only between two numbers or two strings, else false."""
    if operator == "==":
        return bool(left == right)
    if operator == "!=":
        return bool(left != right)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    if not numbers and not (isinstance(left, str) and isinstance(right, str)):
        return False
    if operator == "<":
        return left < right
    if operator == "<=":
        return left <= right
    if operator == ">":
        return left > right
    if operator == ">=":
        return left >= right
    raise TemplateEvaluationError(f"unknown operator {operator!r}")


def _chain(node: Chain, scope: Mapping[str, Any]) -> Any:
    """``&&``/``||`` return an operand, as in JavaScript; comparisons return booleans."""
    value = evaluate(node.first, scope)
    for operator, operand in node.rest:
        if operator == "&&":
            if not truthy(value):
                return value
            value = evaluate(operand, scope)
        elif operator == "||":
            if truthy(value):
                return value
            value = evaluate(operand, scope)
        else:
            value = compare(operator, value, evaluate(operand, scope))
    return value


def _call(node: Call, scope: Mapping[str, Any]) -> Any:
    function = FUNCTIONS.get(node.name)
    if function is None:  # only reachable with a hand-built tree
        raise TemplateEvaluationError(f"unknown function '{node.name}'", node.offset)
    args = [evaluate(arg, scope) for arg in node.args]
    try:
        return function.implementation(*args)
    except TemplateEvaluationError as error:
        raise TemplateEvaluationError(error.message, node.offset) from None
    except (TypeError, ValueError, RecursionError) as error:
        message = f"{node.name}() failed on its arguments: {error}"
        raise TemplateEvaluationError(message, node.offset) from None

"""Value rules (truthiness, text rendering) and the allowlisted functions.

The parser reads the arity table to reject bad calls at load time; the evaluator calls the
implementations. Every function is pure: no I/O, no access to anything but its arguments.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from yaml_loader.templates.errors import TemplateEvaluationError


def truthy(value: Any) -> bool:
    """GitHub's truthiness: null, false, 0, NaN and '' are false; everything else is true."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def to_json(value: Any) -> str:
    """Compact JSON; values JSON cannot hold (dates, paths) are written with ``str``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def to_text(value: Any) -> str:
    """How a value reads when an expression sits inside a longer string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping | list | tuple):
        return to_json(value)
    return str(value)


def check_format(template: str, count: int) -> str | None:
    """Why ``format(template, <count values>)`` cannot work, or None when it can."""
    index = 0
    while index < len(template):
        char = template[index]
        if template.startswith(("{{", "}}"), index):
            index += 2
        elif char == "{":
            close = template.find("}", index)
            number = template[index + 1 : close] if close > 0 else ""
            if not number or not all(c in "0123456789" for c in number):
                return f"invalid placeholder at position {index}; expected '{{N}}' or '{{{{'"
            if int(number) >= count:
                return f"placeholder {{{number}}} has no value ({count} given after the template)"
            index = close + 1
        elif char == "}":
            return f"unmatched '}}' at position {index}; write '}}}}' for a literal brace"
        else:
            index += 1
    return None


def _format(template: Any, *args: Any) -> str:
    text = to_text(template)
    problem = check_format(text, len(args))
    if problem:
        raise TemplateEvaluationError(f"format(): {problem}")
    out: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith(("{{", "}}"), index):
            out.append(text[index])
            index += 2
        elif text[index] == "{":
            close = text.index("}", index)
            out.append(to_text(args[int(text[index + 1 : close])]))
            index = close + 1
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def _from_json(text: Any) -> Any:
    if not isinstance(text, str):
        raise TemplateEvaluationError(f"fromJSON() expected a string, found {type(text).__name__}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise TemplateEvaluationError(f"fromJSON() could not parse its argument: {error}") from None


def _join(items: Any, separator: Any = ",") -> str:
    if isinstance(items, list | tuple):
        return to_text(separator).join(to_text(item) for item in items)
    return to_text(items)


def _contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, list | tuple):
        return any(item == needle for item in haystack)
    if isinstance(haystack, Mapping):
        return isinstance(needle, str) and needle in haystack
    return to_text(needle) in to_text(haystack)


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None or value == "" else value


@dataclass(frozen=True)
class Function:
    name: str
    min_args: int
    max_args: int | None  # None: any number
    implementation: Callable[..., Any]

    def signature(self) -> str:
        """``join() takes 1 to 2 arguments``: the first half of an arity error."""
        if self.max_args is None:
            return f"{self.name}() takes at least {_count(self.min_args)}"
        if self.min_args == self.max_args:
            return f"{self.name}() takes {_count(self.min_args)}"
        return f"{self.name}() takes {self.min_args} to {self.max_args} arguments"


def _count(number: int) -> str:
    return f"{number} argument" if number == 1 else f"{number} arguments"


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("toJSON", 1, 1, to_json),
        Function("fromJSON", 1, 1, _from_json),
        Function("join", 1, 2, _join),
        Function("format", 1, None, _format),
        Function("contains", 2, 2, _contains),
        Function("startsWith", 2, 2, lambda s, p: to_text(s).startswith(to_text(p))),
        Function("endsWith", 2, 2, lambda s, p: to_text(s).endswith(to_text(p))),
        Function("lower", 1, 1, lambda s: to_text(s).lower()),
        Function("upper", 1, 1, lambda s: to_text(s).upper()),
        Function("default", 2, 2, _default),
    )
}
_BY_LOWER_NAME = {name.lower(): f for name, f in FUNCTIONS.items()}


def lookup_function(name: str) -> Function | None:
    """Function names match without regard to case, as in GitHub (``tojson`` is ``toJSON``)."""
    return _BY_LOWER_NAME.get(name.lower())

"""What each YAML tag may become in a cluster file: JSON-like data, or a refusal that says why.

PyYAML's SafeConstructor knows YAML 1.1 types that have no place in run config (dates, bytes,
sets, ordered pairs) and raises bare ``ValueError``/``KeyError``/``AttributeError`` on malformed
scalars (``2024-02-30``, ``!!int '12x'``, a 5,000-digit integer). A cluster file holds what JSON
holds, so every tag is decided here: core scalars are constructed and checked, timestamps are
checked and kept as the text written, and any other tag is refused with a reason and a fix.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

YAML_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL, TIMESTAMP = (
    YAML_TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp")
)
MAP, SEQ, MERGE, VALUE = (YAML_TAG + name for name in ("map", "seq", "merge", "value"))
# tags a mapping key may carry: its text is the key, whatever type the scalar would have
KEY_TAGS = frozenset((STR, INT, FLOAT, BOOL, NULL, TIMESTAMP, MERGE, VALUE))
# core tags that are fine in their place but not on a node of another kind (``!!str {a: 1}``)
_CORE_NAMES = frozenset(("str", "int", "float", "bool", "null", "timestamp", "map", "seq"))
_NULL_TEXTS = frozenset(("", "~", "null", "Null", "NULL"))
_CONSTRUCTOR = SafeConstructor()
_DIGIT = re.compile("[0-9]")
_QUOTE_HINT = "quote it ('{text}') if it is meant as text"


class Refused(Exception):
    """A YAML node this loader will not turn into data, with what to say about it."""

    def __init__(
        self, message: str, *, expected: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.expected, self.hint = message, expected, hint


def tag_name(tag: str) -> str:
    """``tag:yaml.org,2002:set`` -> ``!!set``, as the user would write it."""
    if tag.startswith(YAML_TAG):
        return "!!" + tag[len(YAML_TAG) :]
    return tag if tag.startswith("!") else f"!<{tag}>"


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def construct_scalar(node: yaml.ScalarNode) -> Any:
    """The value of a scalar node, or :class:`Refused`."""
    tag, text = node.tag, node.value
    if tag in (STR, MERGE, VALUE):  # '<<' and '=' written as values are plain text
        return text
    if tag == NULL:
        if text in _NULL_TEXTS:
            return None
        raise Refused(
            f"'{_short(text)}' is not null",
            expected="'null', '~' or nothing after !!null",
            hint="remove the !!null tag to keep the text",
        )
    if tag == BOOL:
        value = _CONSTRUCTOR.bool_values.get(text.lower())
        if value is None:
            raise Refused(
                f"'{_short(text)}' is not a boolean",
                expected="true or false",
                hint="remove the !!bool tag to keep the text",
            )
        return value
    if tag == INT:
        return _integer(node)
    if tag == FLOAT:
        return _float(node)
    if tag == TIMESTAMP:
        _timestamp(node)
        return text  # JSON has no dates: the text as written (what YAML 1.2 and editors read)
    raise refusal(tag, "a scalar")


def _integer(node: yaml.ScalarNode) -> int:
    text = node.value
    limit = sys.get_int_max_str_digits()
    digits = len(_DIGIT.findall(text))
    if limit and digits > limit:
        raise Refused(
            f"integer with {digits} digits is too long",
            expected=f"at most {limit} digits",
            hint=_QUOTE_HINT.format(text=_short(text, 20)),
        )
    try:
        value = _CONSTRUCTOR.construct_yaml_int(node)
        if limit:
            str(value)  # a long binary/hex literal can still be too long to print or serialise
    except (ValueError, IndexError):
        raise Refused(
            f"'{_short(text)}' is not an integer",
            expected="a whole number such as 12, -3 or 0x1F",
            hint="remove the !!int tag to keep the text",
        ) from None
    return value


def _float(node: yaml.ScalarNode) -> float:
    text = node.value
    try:
        value = _CONSTRUCTOR.construct_yaml_float(node)
    except (ValueError, IndexError):
        raise Refused(
            f"'{_short(text)}' is not a number",
            expected="a number such as 0.5 or 1e-3",
            hint="remove the !!float tag to keep the text",
        ) from None
    if not math.isfinite(value):
        raise Refused(
            f"'{_short(text)}' is not a finite number",
            expected="a finite number (cluster files hold JSON numbers: no NaN or infinity)",
            hint=_QUOTE_HINT.format(text=_short(text, 20)),
        )
    return value


def _timestamp(node: yaml.ScalarNode) -> None:
    text = node.value
    try:
        _CONSTRUCTOR.construct_yaml_timestamp(node)
    except AttributeError:  # the timestamp pattern did not match (explicit !!timestamp)
        raise Refused(
            f"'{_short(text)}' is not a date or timestamp",
            expected="YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fraction][Z|+hh:mm]",
            hint="remove the !!timestamp tag to keep the text",
        ) from None
    except (ValueError, OverflowError) as exc:  # day/hour/offset out of range
        raise Refused(
            f"'{_short(text)}' reads as a date but is not a valid one: {exc}",
            expected="a real date such as 2024-02-29",
            hint=_QUOTE_HINT.format(text=_short(text, 30)),
        ) from None


def check_collection(node: yaml.Node) -> None:
    """A mapping or list must carry no tag but its own (``!!set``, ``!!omap``, ``!foo``...)."""
    own = MAP if isinstance(node, yaml.MappingNode) else SEQ
    if node.tag != own:
        raise refusal(node.tag, "a mapping" if own == MAP else "a list")


def check_key(node: yaml.ScalarNode) -> None:
    if node.tag not in KEY_TAGS:
        raise refusal(node.tag, "a key")


def refusal(tag: str, where: str) -> Refused:
    """Why ``tag`` cannot stand on ``where``, and what to write instead."""
    name = tag_name(tag)
    if tag.startswith(YAML_TAG + "python/"):
        return Refused(
            f"tag '{name}' is not allowed: cluster files are read as data, never as Python objects",
            hint="remove the tag",
        )
    if tag == YAML_TAG + "set":
        return Refused(f"tag '{name}' is not supported", hint="write a list: [a, b, c]")
    if tag in (YAML_TAG + "omap", YAML_TAG + "pairs"):
        return Refused(f"tag '{name}' is not supported", hint="write a plain mapping: {a: 1, b: 2}")
    if tag == YAML_TAG + "binary":
        return Refused(
            f"tag '{name}' is not supported: run config holds text, not bytes",
            hint="write the value as a string, or store the data in S3 and pass its path",
        )
    if tag.startswith(YAML_TAG) and tag[len(YAML_TAG) :] in _CORE_NAMES:
        return Refused(
            f"tag '{name}' does not fit {where}", hint="remove the tag; plain YAML needs none"
        )
    return Refused(
        f"unknown tag '{name}'",
        expected="no tag (cluster files use plain YAML)",
        hint="remove the tag",
    )

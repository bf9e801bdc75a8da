"""Turn an LLM satellite's ``output-schema`` into JSON Schema, and check answers against it.

Cluster files write the expected shape loosely, as in the reference example::

    {"company": string, "revenue": number, }

(bare type names, a trailing comma). Engines that enforce structure (vLLM structured outputs,
llama.cpp and OpenAI ``response_format``) need real JSON Schema, so the sketch is parsed once,
at load time, into an object schema whose keys are all required and closed to extra keys. A
value that already is JSON Schema (a mapping, or text that parses as one) is kept as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

TYPE_NAMES = {
    "string": "string",
    "str": "string",
    "text": "string",
    "number": "number",
    "float": "number",
    "double": "number",
    "integer": "integer",
    "int": "integer",
    "boolean": "boolean",
    "bool": "boolean",
    "null": "null",
    "object": "object",
    "array": "array",
    "list": "array",
}
# Keys that only JSON Schema (not a sketch of an answer) has at its top level.
_SCHEMA_KEYS = frozenset(
    {"$schema", "$ref", "$defs", "type", "properties", "items", "anyOf", "oneOf", "allOf", "enum"}
)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<punct>[{}\[\]:,?])
      | "(?P<dq>(?:[^"\\]|\\.)*)"
      | '(?P<sq>(?:[^'\\]|\\.)*)'
      | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
      | (?P<comment>//[^\n]*|\#[^\n]*)
    )""",
    re.VERBOSE,
)


class OutputSchemaError(ValueError):
    """The output-schema text is neither JSON Schema nor the loose ``{"key": type}`` notation."""


def to_json_schema(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema for ``value``: a schema mapping, JSON text, or the loose notation."""
    if isinstance(value, Mapping):
        return _from_mapping(dict(value))
    text = value.strip()
    if not text:
        raise OutputSchemaError("output-schema is empty")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return _Sketch(text).parse()
    if isinstance(parsed, dict):
        return _from_mapping(parsed)
    if isinstance(parsed, str) and parsed in TYPE_NAMES:
        return {"type": TYPE_NAMES[parsed]}
    raise OutputSchemaError(f"output-schema must describe an object, got {type(parsed).__name__}")


def _from_mapping(value: dict[str, Any]) -> dict[str, Any]:
    """A mapping is JSON Schema when it uses schema keywords; otherwise a sketch of an answer."""
    if _SCHEMA_KEYS & value.keys():
        _check_schema(value)
        return value
    return _object({key: _from_example(item, key) for key, item in value.items()})


def _from_example(value: Any, where: str) -> dict[str, Any]:
    """``"string"`` -> string, ``{...}`` -> object, ``["number"]`` -> array of numbers."""
    if isinstance(value, str) and value.strip().lower().rstrip("?") in TYPE_NAMES:
        return {"type": TYPE_NAMES[value.strip().lower().rstrip("?")]}
    if isinstance(value, dict):
        return _from_mapping(value)
    if isinstance(value, list) and len(value) == 1:
        return {"type": "array", "items": _from_example(value[0], where)}
    raise OutputSchemaError(
        f"output-schema: '{where}' must be a type name ({', '.join(sorted(set(TYPE_NAMES)))}), "
        f"an object or a one-element list, got {value!r}"
    )


def _object(properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _check_schema(schema: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:  # checked again, strictly, when answers are validated
        return
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise OutputSchemaError(f"output-schema is not valid JSON Schema: {exc.message}") from None


class _Sketch:
    """Recursive-descent parser of ``{"key": type, ...}`` with bare words and trailing commas."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise self._error(f"unexpected character {text[pos]!r}", pos)
            kind = match.lastgroup or ""
            if kind != "comment":
                start = match.start(kind) - (1 if kind in ("dq", "sq") else 0)  # the quote
                self.tokens.append((kind, match.group(kind), start))
            pos = match.end()
        self.index = 0

    def parse(self) -> dict[str, Any]:
        schema = self._value("output-schema")
        if self.index < len(self.tokens):
            raise self._error("unexpected text after the schema", self.tokens[self.index][2])
        if schema.get("type") != "object":
            raise OutputSchemaError('output-schema must describe an object: write {"key": type}')
        return schema

    def _error(self, message: str, pos: int) -> OutputSchemaError:
        line = self.text.count("\n", 0, pos) + 1
        column = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return OutputSchemaError(f"output-schema line {line} column {column}: {message}")

    def _peek(self) -> tuple[str, str, int]:
        if self.index >= len(self.tokens):
            return ("end", "", len(self.text))
        return self.tokens[self.index]

    def _take(self, punct: str | None = None) -> tuple[str, str, int]:
        token = self._peek()
        if punct is not None and (token[0] != "punct" or token[1] != punct):
            found = "the end" if token[0] == "end" else repr(token[1])
            raise self._error(f"expected '{punct}', found {found}", token[2])
        self.index += 1
        return token

    def _value(self, where: str) -> dict[str, Any]:
        kind, text, pos = self._peek()
        if kind == "punct" and text == "{":
            return self._object()
        if kind == "punct" and text == "[":
            self._take("[")
            items = self._value(where)
            self._take("]")
            return {"type": "array", "items": items}
        if kind in ("word", "dq", "sq"):
            self._take()
            name = text.lower()
            array = self._peek()[:2] == ("punct", "[") and self.index + 1 < len(self.tokens)
            array = array and self.tokens[self.index + 1][:2] == ("punct", "]")
            if array:  # `string[]`
                self.index += 2
            if name not in TYPE_NAMES:
                raise self._error(
                    f"'{where}' has unknown type '{text}' (use one of "
                    f"{', '.join(sorted(set(TYPE_NAMES.values())))})",
                    pos,
                )
            schema = {"type": TYPE_NAMES[name]}
            return {"type": "array", "items": schema} if array else schema
        found = "the end" if kind == "end" else repr(text)
        raise self._error(f"expected a type for '{where}', found {found}", pos)

    def _object(self) -> dict[str, Any]:
        self._take("{")
        properties: dict[str, dict[str, Any]] = {}
        optional: set[str] = set()
        while not (self._peek()[0] == "punct" and self._peek()[1] == "}"):
            kind, key, pos = self._take()
            if kind not in ("dq", "sq", "word"):
                raise self._error(f"expected a key, found {key!r}", pos)
            if key in properties:
                raise self._error(f"key '{key}' appears twice", pos)
            if self._peek()[:2] == ("punct", "?"):
                self._take("?")
                optional.add(key)
            self._take(":")
            properties[key] = self._value(key)
            if self._peek()[:2] == ("punct", "?"):
                self._take("?")
                optional.add(key)
            if self._peek()[:2] == ("punct", ","):
                self._take(",")
            elif not (self._peek()[0] == "punct" and self._peek()[1] == "}"):
                token = self._peek()
                found = "the end" if token[0] == "end" else repr(token[1])
                raise self._error(f"expected ',' or '}}' after '{key}', found {found}", token[2])
        self._take("}")
        schema = _object(properties)
        schema["required"] = [key for key in properties if key not in optional]
        return schema


def validate_answer(answer: Any, schema: Mapping[str, Any]) -> None:
    """Raise :class:`ValueError` naming the first mismatch between ``answer`` and ``schema``."""
    try:
        import jsonschema
    except ImportError:
        raise ImportError(
            "checking LLM answers against output-schema needs the 'jsonschema' package "
            "(pip install 'exosphere-dagster[vllm]' or pip install jsonschema)"
        ) from None
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(answer))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<root>"
        raise ValueError(f"answer does not match output-schema at {where}: {error.message}")

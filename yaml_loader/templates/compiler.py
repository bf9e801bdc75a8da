"""Compile strings (and whole YAML values) holding ``${{ }}`` once; render them per item.

Compiling happens at load time so every syntax error, unknown root and referenced path is
known before a run starts; rendering is then a cheap pure walk over the compiled parts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from yaml_loader.templates.ast import Call, Chain, Context, Literal, Node, Not, Path
from yaml_loader.templates.errors import ErrorKind, TemplateSyntaxError
from yaml_loader.templates.evaluator import evaluate
from yaml_loader.templates.functions import to_text
from yaml_loader.templates.lexer import lex_expression
from yaml_loader.templates.parser import parse

MAX_EXPRESSIONS = 100
OPENER = "${{"

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Reference:
    """One property path read by an expression, e.g. ``satellites.get-files-from-s3.output``.

    ``path`` holds the literal segments only, up to the first computed index.
    """

    root: str
    path: tuple[str | int, ...]
    offset: int


@dataclass(frozen=True)
class CompiledTemplate:
    """A string split into literal text and expression trees, in order.

    ``whole`` is true when the string is one expression (blanks around it allowed): its
    value then keeps its type (object, list, number, null) instead of being rendered as text.
    """

    source: str
    parts: tuple[str | Node, ...]
    whole: bool
    references: tuple[Reference, ...]


def has_template(text: str) -> bool:
    """Whether the string holds a ``${{`` (``$${{`` included) and so needs compiling."""
    return OPENER in text


def compile_template(text: str) -> CompiledTemplate | None:
    """The compiled form of ``text``, or None when it has no ``${{``."""
    if not has_template(text):
        return None
    try:
        parts = _split(text)
    except TemplateSyntaxError as error:
        error.source = text
        raise
    nodes = [part for part in parts if not isinstance(part, str)]
    whole = len(nodes) == 1 and all(p.isspace() for p in parts if isinstance(p, str))
    found = (ref for node in nodes for ref in _references(node))
    references = tuple(sorted(found, key=lambda ref: ref.offset))
    return CompiledTemplate(text, tuple(parts), whole, references)


def _split(text: str) -> list[str | Node]:
    parts: list[str | Node] = []
    position = 0
    count = 0
    while (opener := text.find(OPENER, position)) >= 0:
        start = opener - 1 if opener > position and text[opener - 1] == "$" else opener
        count += 1
        if count > MAX_EXPRESSIONS:
            raise TemplateSyntaxError(
                f"more than {MAX_EXPRESSIONS} expressions in one string",
                start,
                hint="split the value into several fields",
                kind=ErrorKind.TOO_MANY_EXPRESSIONS,
            )
        if start > position:
            parts.append(text[position:start])
        tokens, position = lex_expression(text, opener + len(OPENER), start)
        parts.append(parse(tokens))
    if position < len(text):
        parts.append(text[position:])
    return parts


def _references(node: Node) -> Iterator[Reference]:
    """Every root-based path read in ``node``, including those inside computed indexes."""
    if isinstance(node, Context):
        yield Reference(node.name, (), node.offset)
    elif isinstance(node, Path):
        literal: list[str | int] = []
        collecting = isinstance(node.base, Context)
        for segment in node.segments:
            key = segment.value if isinstance(segment, Literal) else None
            if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
                if collecting:
                    literal.append(key)
            else:
                collecting = False
                yield from _references(segment)
        if isinstance(node.base, Context):
            yield Reference(node.base.name, tuple(literal), node.base.offset)
        else:
            yield from _references(node.base)
    elif isinstance(node, Not):
        yield from _references(node.operand)
    elif isinstance(node, Chain):
        yield from _references(node.first)
        for _, operand in node.rest:
            yield from _references(operand)
    elif isinstance(node, Call):
        for arg in node.args:
            yield from _references(arg)


def render(template: CompiledTemplate, scope: Mapping[str, Any]) -> Any:
    """The template's value in ``scope``: typed when ``whole``, else a string.

    A whole value that is a string keeps the blanks around the expression (the newline
    ending a YAML block string). A dict or list is copied, so a consumer that changes it
    cannot change the scope (another item's lineage) behind its back.
    """
    if template.whole:
        node = next(part for part in template.parts if not isinstance(part, str))
        value = evaluate(node, scope)
        if isinstance(value, dict | list):
            return copy.deepcopy(value)
        if not isinstance(value, str):
            return value
        return "".join(value if part is node else part for part in template.parts)
    return "".join(
        part if isinstance(part, str) else to_text(evaluate(part, scope)) for part in template.parts
    )


def compile_value(value: Any) -> Any:
    """``value`` with every templated string (in nested dicts and lists) compiled.

    Dict keys are left as written. A syntax error gets ``path``, the key path of the string.
    """
    return _compile_at(value, ())


def _compile_at(value: Any, path: KeyPath) -> Any:
    if isinstance(value, str):
        try:
            compiled = compile_template(value)
        except TemplateSyntaxError as error:
            error.path = path
            raise
        return value if compiled is None else compiled
    if isinstance(value, Mapping):
        return {key: _compile_at(item, (*path, key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [_compile_at(item, (*path, i)) for i, item in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def render_value(compiled: Any, scope: Mapping[str, Any]) -> Any:
    """The inverse walk of ``compile_value``: new plain dicts and lists, templates rendered."""
    if isinstance(compiled, CompiledTemplate):
        return render(compiled, scope)
    if isinstance(compiled, Mapping):
        return {key: render_value(item, scope) for key, item in compiled.items()}
    if isinstance(compiled, list | tuple):
        items = [render_value(item, scope) for item in compiled]
        return tuple(items) if isinstance(compiled, tuple) else items
    return compiled


def renders_to_itself(compiled: Any) -> bool:
    """Whether ``render_value(compiled, scope)`` is ``compiled`` itself in any scope: neither a
    template nor a dict or list (those are rebuilt). A caller may then skip the scope."""
    return not isinstance(compiled, CompiledTemplate | Mapping | list | tuple)


def iter_templates(compiled: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, CompiledTemplate]]:
    """Every template inside a compiled value, depth first, with its key path."""
    if isinstance(compiled, CompiledTemplate):
        yield path, compiled
    elif isinstance(compiled, Mapping):
        for key, item in compiled.items():
            yield from iter_templates(item, (*path, key))
    elif isinstance(compiled, list | tuple):
        for i, item in enumerate(compiled):
            yield from iter_templates(item, (*path, i))

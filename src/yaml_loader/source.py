"""Safe YAML reading that remembers where every key and value came from.

PyYAML composes a node tree carrying marks; we turn it into plain Python data ourselves so that
duplicate keys are errors, aliases cannot explode memory, and every key path maps to a
file:line:col for error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from yaml_loader.errors import ConfigError, ConfigErrors, KeyPath

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_NODES = 100_000
# libyaml's parser when PyYAML was built with it: the same nodes, marks and tags, about ten times
# faster than the pure-Python one (which was most of the loading time); its nesting limit is 1000.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a new line


class Position(NamedTuple):  # a tuple: about twice as fast to create as a frozen dataclass
    line: int
    column: int
    style: str | None = None  # YAML scalar style: None (plain), "'", '"', "|", ">"
    indent: int = 0  # column (1-based) of the block scalar's content, for template offsets


@dataclass
class SourceMap:
    """Key path -> where its key and its value start in the file."""

    file: str
    keys: dict[KeyPath, Position] = field(default_factory=dict)
    values: dict[KeyPath, Position] = field(default_factory=dict)

    def locate(self, path: KeyPath, prefer_key: bool = False) -> Position:
        """The closest known position for a path, walking up to its parents when needed."""
        probe = tuple(path)
        while True:
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            if probe in first:
                return first[probe]
            if probe in second:
                return second[probe]
            if not probe:
                return Position(1, 1)
            probe = probe[:-1]

    def error(
        self, path: KeyPath, message: str, *, at_key: bool = False, **extra: Any
    ) -> ConfigError:
        pos = self.locate(path, prefer_key=at_key)
        return ConfigError(self.file, pos.line, pos.column, tuple(path), message, **extra)


class _Reader:
    def __init__(self, source: SourceMap, text: str) -> None:
        self.source = source
        self.text = text
        self._lines: list[str] | None = None
        self.errors: list[ConfigError] = []
        self.nodes = 0
        self.constructor = yaml.SafeLoader("")  # only used for scalar construction

    def _fail(self, node: yaml.Node, path: KeyPath, message: str, **extra: Any) -> None:
        mark = node.start_mark
        self.errors.append(
            ConfigError(self.source.file, mark.line + 1, mark.column + 1, path, message, **extra)
        )

    def read(self, node: yaml.Node, path: KeyPath, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooLarge(node, path, f"document expands to more than {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise _TooLarge(node, path, f"document is nested deeper than {MAX_DEPTH} levels")
        mark = node.start_mark
        style = getattr(node, "style", None)
        indent = 0
        if style in ("|", ">"):
            indent = self._block_indent(node)
        self.source.values.setdefault(path, Position(mark.line + 1, mark.column + 1, style, indent))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.read(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        self.constructor.flatten_mapping(node)  # resolves `<<` merge keys
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(
                    key_node, path, "mapping keys must be plain strings", found="a nested key"
                )
                continue
            key = str(key_node.value)
            key_path = (*path, key)
            if key in result:
                first = self.source.keys[key_path]
                self._fail(
                    key_node,
                    key_path,
                    f"duplicate key '{key}'",
                    found=f"'{key}' already defined at line {first.line}",
                    hint="remove one of the two entries",
                )
                continue
            km = key_node.start_mark
            self.source.keys[key_path] = Position(km.line + 1, km.column + 1)
            result[key] = self.read(value_node, key_path, depth + 1)
        return result

    def _scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        if node.tag == _STR_TAG:  # most values: what SafeConstructor would return, faster
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self._fail(node, path, f"invalid value: {getattr(exc, 'problem', exc)}")
            return None

    def _block_indent(self, node: yaml.Node) -> int:
        """Column of the first content line of a block scalar (content starts on the next line)."""
        if self._lines is None:
            self._lines = _LINE_BREAK.split(self.text)
        index = node.start_mark.line + 1
        if index >= len(self._lines):
            return node.start_mark.column + 1
        line = self._lines[index]
        return len(line) - len(line.lstrip(" ")) + 1


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.node, self.path, self.message = node, path, message


def _syntax_hint(text: str, line: int, column: int, problem: str) -> str:
    """Name a tab when there is one where the parser stopped (libyaml does not say)."""
    if "another document" in problem:
        return "a cluster file holds one YAML document: remove the '---' or split the file"
    lines = _LINE_BREAK.split(text)
    here = lines[line - 1] if line <= len(lines) else ""
    if "\t" in here[: column + 1]:
        return "YAML does not allow tabs for indentation: use spaces"
    return "check indentation and quoting near this position"


def _too_deep(text: str, file: str) -> ConfigError:
    """Where nesting first passes MAX_DEPTH, found with the parser's flat (non-recursive) events."""
    depth, line, column = 0, 1, 1
    try:
        for event in yaml.parse(text, Loader=YAML_LOADER):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH + 1:  # the reader counts the root mapping as depth 0
                    line, column = event.start_mark.line + 1, event.start_mark.column + 1
                    break
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass
    return ConfigError(
        file,
        line,
        column,
        (),
        f"document is nested deeper than {MAX_DEPTH} levels",
        hint="YAML anchors/aliases and deep nesting are limited; write the values out",
    )


def read_yaml_text(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain data plus its source map; raise ConfigErrors."""
    source = SourceMap(file)
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        raise ConfigErrors(
            [
                ConfigError(
                    file,
                    1,
                    1,
                    (),
                    "file is too large",
                    expected=f"at most {MAX_FILE_BYTES // 1000} kB",
                    found=f"{len(text.encode('utf-8', 'replace')) // 1000} kB",
                    hint="split the cluster into several files; large data belongs in S3, not YAML",
                )
            ]
        )
    try:
        node = yaml.compose(text, Loader=YAML_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        if exc.context:
            started = exc.context_mark
            if (
                exc.context.startswith("while")
                and started is not None
                and mark is not None
                and started.line != mark.line
            ):
                problem = f"{problem} ({exc.context} started at line {started.line + 1})"
            else:
                problem = f"{problem} ({exc.context})"
        raise ConfigErrors(
            [
                ConfigError(
                    file,
                    line,
                    col,
                    (),
                    f"YAML syntax error: {problem}",
                    hint=_syntax_hint(text, line, col, problem),
                )
            ]
        ) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. NUL
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        if exc.encoding == "unicode":  # pure-Python reader: a character offset
            before = text[: exc.position]
        else:  # libyaml: a byte offset into the UTF-8 text
            before = text.encode("utf-8")[: exc.position].decode("utf-8", "replace")
        line = len(_LINE_BREAK.findall(before)) + 1
        column = len(_LINE_BREAK.split(before)[-1]) + 1
        raise ConfigErrors(
            [
                ConfigError(
                    file,
                    line,
                    column,
                    (),
                    f"character #x{code:04x} is not allowed in YAML",
                    hint="remove it, or write it as an escape inside a double-quoted string",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigErrors([ConfigError(file, 1, 1, (), f"YAML error: {exc}")]) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise ConfigErrors([_too_deep(text, file)]) from None
    if node is None:
        raise ConfigErrors(
            [
                ConfigError(
                    file,
                    1,
                    1,
                    (),
                    "file is empty",
                    expected="a mapping with 'version' and 'cluster'",
                    found="nothing",
                )
            ]
        )
    reader = _Reader(source, text)
    try:
        data = reader.read(node, ())
    except _TooLarge as exc:
        mark = exc.node.start_mark
        raise ConfigErrors(
            [
                ConfigError(
                    file,
                    mark.line + 1,
                    mark.column + 1,
                    exc.path,
                    exc.message,
                    hint="YAML anchors/aliases and deep nesting are limited; write the values out",
                )
            ]
        ) from None
    except RecursionError:
        raise ConfigErrors([ConfigError(file, 1, 1, (), "document is nested too deeply")]) from None
    if reader.errors:
        raise ConfigErrors(reader.errors)
    return data, source


def read_yaml_file(path: str | Path) -> tuple[Any, SourceMap]:
    """Read a file as UTF-8 YAML; unreadable files become ConfigErrors too."""
    file = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigErrors(
                [
                    ConfigError(
                        file,
                        1,
                        1,
                        (),
                        "file is too large",
                        expected=f"at most {MAX_FILE_BYTES // 1000} kB",
                        found=f"{size // 1000} kB",
                        hint="split the cluster into several files",
                    )
                ]
            )
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigErrors(
            [
                ConfigError(
                    file,
                    1,
                    1,
                    (),
                    "file is not valid UTF-8 text",
                    found=f"byte {exc.object[exc.start]:#x} at offset {exc.start}",
                )
            ]
        ) from None
    except OSError as exc:
        raise ConfigErrors(
            [ConfigError(file, 1, 1, (), f"cannot read file: {exc.strerror}")]
        ) from None
    return read_yaml_text(text, file)

"""Safe YAML reading that remembers where every key and value came from.

PyYAML composes a node tree carrying marks; we turn it into plain Python data ourselves so that
duplicate keys are errors, aliases cannot explode memory, ``<<`` merges follow YAML's rules (keys
written in the mapping win), every tag is decided by ``yaml_loader.scalars``, and every key path
maps to a file:line:col for error messages.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from yaml_loader import scalars, syntax
from yaml_loader.errors import ConfigError, ConfigErrors, KeyPath
from yaml_loader.syntax import LINE_BREAK

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_NODES = 100_000
# libyaml's parser when PyYAML was built with it: the same nodes, marks and tags, about ten times
# faster than the pure-Python one (which was most of the loading time); its nesting limit is 1000.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        self._merged: dict[int, list[tuple[yaml.Node, yaml.Node]]] = {}  # by mapping node id
        self._open: set[int] = set()  # collections being read: an alias back to one is a cycle

    def _fail(self, node: yaml.Node, path: KeyPath, message: str, **extra: Any) -> None:
        mark = node.start_mark
        self.errors.append(
            ConfigError(self.source.file, mark.line + 1, mark.column + 1, path, message, **extra)
        )

    def _refused(self, node: yaml.Node, path: KeyPath, refused: scalars.Refused) -> None:
        self._fail(node, path, refused.message, expected=refused.expected, hint=refused.hint)

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
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        try:
            scalars.check_collection(node)
        except scalars.Refused as refused:
            self._refused(node, path, refused)
            return None
        if id(node) in self._open:  # an alias inside the value it names: `&a [*a]`
            self._fail(
                node,
                path,
                "an alias refers to a value that contains it (the value would be infinite)",
                hint="alias a value from outside the anchored one",
            )
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
            return [self.read(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(
                    key_node,
                    path,
                    "mapping keys must be plain strings",
                    found="a list or mapping used as a key",
                    hint="write the key as text ('? [a, b]' and '? {a: 1}' are complex keys)",
                )
                continue
            try:
                scalars.check_key(key_node)
            except scalars.Refused as refused:
                self._refused(key_node, path, refused)
                continue
            if key_node.tag == scalars.MERGE:
                merged.extend(self._merge_sources(key_node, value_node, path))
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
        for key_node, value_node in merged:  # YAML merge: keys written here win, then first source
            key = str(key_node.value)
            if key not in result:
                km = key_node.start_mark
                self.source.keys.setdefault((*path, key), Position(km.line + 1, km.column + 1))
                result[key] = self.read(value_node, (*path, key), depth + 1)
        return result

    def _merge_sources(
        self, key_node: yaml.Node, value_node: yaml.Node, path: KeyPath
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """The pairs a ``<<`` key brings in, earlier sources first (errors at the ``<<``)."""
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                kind = "a list" if isinstance(source, yaml.SequenceNode) else "a scalar"
                self._fail(
                    key_node,
                    (*path, "<<"),
                    "merge key '<<' needs a mapping or a list of mappings",
                    found=kind + (" inside the list" if source is not value_node else ""),
                    hint="merge an anchored mapping: '<<: *defaults' or '<<: [*a, *b]'",
                )
                continue
            pairs.extend(self._flattened(source, key_node, path, set()))
        return pairs

    def _flattened(
        self, node: yaml.MappingNode, at: yaml.Node, path: KeyPath, visiting: set[int]
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """A merged mapping's own pairs, then those of its own merges; one pair per key."""
        if id(node) in self._merged:
            return self._merged[id(node)]
        if id(node) in visiting:
            self._fail(
                at,
                (*path, "<<"),
                "merge key '<<' merges a mapping into itself",
                hint="merge an anchor defined outside this mapping",
            )
            return []
        visiting.add(id(node))
        own: list[tuple[yaml.Node, yaml.Node]] = []
        inherited: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # reported where the mapping itself is read
            if key_node.tag != scalars.MERGE:
                own.append((key_node, value_node))
                continue
            subs = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for sub in subs:
                if isinstance(sub, yaml.MappingNode):
                    inherited.extend(self._flattened(sub, at, path, visiting))
        seen: set[str] = set()
        pairs = []
        for key_node, value_node in own + inherited:
            if str(key_node.value) not in seen:
                seen.add(str(key_node.value))
                pairs.append((key_node, value_node))
        visiting.discard(id(node))
        self._merged[id(node)] = pairs
        return pairs

    def _scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        if node.tag == scalars.STR:  # most values: no construction needed
            return node.value
        try:
            return scalars.construct_scalar(node)
        except scalars.Refused as refused:
            self._refused(node, path, refused)
            return None

    def _block_indent(self, node: yaml.Node) -> int:
        """Column of the first content line of a block scalar (content starts on the next line)."""
        if self._lines is None:
            self._lines = LINE_BREAK.split(self.text)
        index = node.start_mark.line + 1
        if index >= len(self._lines):
            return node.start_mark.column + 1
        line = self._lines[index]
        return len(line) - len(line.lstrip(" ")) + 1


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.node, self.path, self.message = node, path, message


def _too_large(file: str, size: int, hint: str) -> ConfigErrors:
    return ConfigErrors(
        [
            ConfigError(
                file,
                1,
                1,
                (),
                "file is too large",
                expected=f"at most {MAX_FILE_BYTES // 1000} kB",
                found=f"{size // 1000} kB",
                hint=hint,
            )
        ]
    )


CLUSTER_FILE = "a mapping with 'version' and 'cluster'"  # what a cluster file holds


def read_yaml_text(text: str, file: str, expected: str = CLUSTER_FILE) -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain data plus its source map; raise ConfigErrors.
    ``expected``: what the file should hold, for the error of an empty one."""
    source = SourceMap(file)
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_FILE_BYTES:
        raise _too_large(
            file, size, "split the cluster into several files; large data belongs in S3, not YAML"
        )
    text = text.removeprefix(syntax.BOM)  # one leading byte-order mark is allowed
    if boms := syntax.stray_boms(text, file):
        raise ConfigErrors(boms)
    try:
        node = yaml.compose(text, Loader=YAML_LOADER)
    except yaml.MarkedYAMLError as exc:
        raise ConfigErrors([syntax.marked_error(exc, text, file)]) from None
    except yaml.reader.ReaderError as exc:
        raise ConfigErrors([syntax.character_error(exc, text, file)]) from None
    except yaml.YAMLError as exc:
        raise ConfigErrors([ConfigError(file, 1, 1, (), f"YAML error: {exc}")]) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise ConfigErrors([syntax.too_deep(text, file, YAML_LOADER, MAX_DEPTH)]) from None
    if node is None:
        raise ConfigErrors(
            [
                ConfigError(
                    file,
                    1,
                    1,
                    (),
                    "file is empty",
                    expected=expected,
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
                    hint=syntax.LIMIT_HINT,
                )
            ]
        ) from None
    except RecursionError:
        raise ConfigErrors([ConfigError(file, 1, 1, (), "document is nested too deeply")]) from None
    if reader.errors:
        raise ConfigErrors(reader.errors)
    return data, source


def read_yaml_file(path: str | Path, expected: str = CLUSTER_FILE) -> tuple[Any, SourceMap]:
    """Read a file as UTF-8 YAML; unreadable files become ConfigErrors too."""
    file = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise _too_large(file, size, "split the cluster into several files")
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
                    found="a UTF-16 byte-order mark"
                    if exc.object[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
                    else f"byte {exc.object[exc.start]:#x} at offset {exc.start}",
                    hint="save the file as UTF-8",
                )
            ]
        ) from None
    except OSError as exc:
        raise ConfigErrors(
            [ConfigError(file, 1, 1, (), f"cannot read file: {exc.strerror}")]
        ) from None
    return read_yaml_text(text, file, expected)

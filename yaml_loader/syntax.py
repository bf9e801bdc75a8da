"""A file PyYAML cannot parse becomes one located ConfigError that names the fix.

The C (libyaml) and pure-Python parsers word their errors differently; the messages here say the
same thing for both wherever the difference is only wording (anchors, aliases, bad characters).
"""

from __future__ import annotations

import re

import yaml

from yaml_loader.errors import ConfigError

LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a new line
BOM = "\ufeff"
_ANCHOR_NAME = re.compile(r"[&*]([^\s,\[\]{}]+)")
LIMIT_HINT = "YAML anchors/aliases and deep nesting are limited; write the values out"


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    before = text[:offset]
    return len(LINE_BREAK.findall(before)) + 1, len(LINE_BREAK.split(before)[-1]) + 1


def stray_boms(text: str, file: str) -> list[ConfigError]:
    """A byte-order mark anywhere but at the very start (libyaml rejects it, PyYAML keeps it)."""
    errors = []
    for match in re.finditer(BOM, text):
        line, column = position(text, match.start())
        errors.append(
            ConfigError(
                file,
                line,
                column,
                (),
                "invisible byte-order mark (U+FEFF) inside the file",
                hint="delete it (it often comes from joining files saved by different editors)",
            )
        )
    return errors


def _anchor(text: str, mark: yaml.Mark | None) -> str:
    """The anchor or alias name written at ``mark`` (libyaml's messages leave it out)."""
    if mark is None:
        return ""
    lines = LINE_BREAK.split(text)
    here = lines[mark.line][mark.column :] if mark.line < len(lines) else ""
    match = _ANCHOR_NAME.match(here)
    return match.group(1) if match else ""


def _hint(text: str, line: int, column: int, problem: str) -> str:
    """Name a tab when there is one where the parser stopped (libyaml does not say)."""
    if "incompatible YAML document" in problem:
        return "remove the '%YAML' directive: cluster files are YAML 1.1"
    if "another document" in problem:
        return "a cluster file holds one YAML document: remove the '---' or split the file"
    lines = LINE_BREAK.split(text)
    here = lines[line - 1] if line <= len(lines) else ""
    if "\t" in here[: column + 1]:
        return "YAML does not allow tabs for indentation: use spaces"
    return "check indentation and quoting near this position"


def marked_error(exc: yaml.MarkedYAMLError, text: str, file: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    started = exc.context_mark
    if "undefined alias" in problem:
        name = _anchor(text, mark)
        return ConfigError(
            file,
            line,
            col,
            (),
            f"alias '*{name}' refers to no anchor",
            hint=f"define '&{name}' on a value above this line, or fix the alias's spelling",
        )
    if exc.context and "duplicate anchor" in exc.context and started is not None:
        name = _anchor(text, mark)
        return ConfigError(
            file,
            line,
            col,
            (),
            f"anchor '&{name}' is defined twice (first at line {started.line + 1})",
            hint="give each anchor its own name",
        )
    if exc.context:
        if (
            exc.context.startswith("while")
            and started is not None
            and mark is not None
            and started.line != mark.line
        ):
            problem = f"{problem} ({exc.context} started at line {started.line + 1})"
        else:
            problem = f"{problem} ({exc.context})"
    return ConfigError(
        file, line, col, (), f"YAML syntax error: {problem}", hint=_hint(text, line, col, problem)
    )


def character_error(exc: yaml.reader.ReaderError, text: str, file: str) -> ConfigError:
    """A character YAML does not allow, e.g. NUL."""
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    if exc.encoding == "unicode":  # pure-Python reader: a character offset
        before = text[: exc.position]
    else:  # libyaml: a byte offset into the UTF-8 text
        before = text.encode("utf-8")[: exc.position].decode("utf-8", "replace")
    line, column = position(before, len(before))
    return ConfigError(
        file,
        line,
        column,
        (),
        f"character #x{code:04x} is not allowed in YAML",
        hint="remove it, or write it as an escape inside a double-quoted string",
    )


def too_deep(text: str, file: str, loader: type[yaml.SafeLoader], max_depth: int) -> ConfigError:
    """Where nesting first passes max_depth, found with the parser's flat (non-recursive) events."""
    depth, line, column = 0, 1, 1
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > max_depth + 1:  # the reader counts the root mapping as depth 0
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
        f"document is nested deeper than {max_depth} levels",
        hint=LIMIT_HINT,
    )

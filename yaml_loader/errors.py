"""The one error type of the loader: every problem in a cluster file says where, what, and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]


def format_key_path(path: Sequence[str | int]) -> str:
    """Render ``("cluster", "satellites", 2, "config")`` as ``cluster.satellites[2].config``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<document>"


def did_you_mean(word: str, candidates: Iterable[str], *, ignore_case: bool = False) -> str | None:
    """A hint naming the closest candidate, if one is close enough to be a likely typo."""
    spelled = {(c.lower() if ignore_case else c): c for c in candidates}
    key = word.lower() if ignore_case else word
    matches = difflib.get_close_matches(key, list(spelled), n=1, cutoff=0.6)
    return f"did you mean '{spelled[matches[0]]}'?" if matches else None


@dataclass(frozen=True)
class ConfigError:
    """One problem in one file, at one place."""

    file: str
    line: int
    column: int
    key_path: KeyPath
    message: str
    expected: str | None = None
    found: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {format_key_path(self.key_path)}: {self.message}"
        if self.expected is not None:
            text += f"\n    expected: {self.expected}"
        if self.found is not None:
            text += f"\n    found: {self.found}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


@dataclass
class ConfigErrors(Exception):
    """All problems found in a file (or a folder), raised together."""

    errors: list[ConfigError] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"{count} error{'s' if count != 1 else ''} in cluster configuration"
        return head + ":\n" + "\n".join(str(e) for e in self.errors)

    def __bool__(self) -> bool:
        return bool(self.errors)


def describe_value(value: object, limit: int = 60) -> str:
    """A short, safe description of a found value for error messages."""
    kind = {
        dict: "mapping",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return f"a {kind} with {len(value)} entr{'y' if len(value) == 1 else 'ies'}"
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{kind} {text}"

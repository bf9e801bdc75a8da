"""Errors of the template language: positioned, classified, and safe to pickle across processes."""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    """What went wrong while reading a template; lets callers and tests tell problems apart."""

    UNTERMINATED_EXPRESSION = "unterminated expression"
    UNTERMINATED_STRING = "unterminated string"
    UNEXPECTED_CHARACTER = "unexpected character"
    UNEXPECTED_TOKEN = "unexpected token"
    UNKNOWN_ROOT = "unknown root"
    UNKNOWN_FUNCTION = "unknown function"
    WRONG_ARGUMENTS = "wrong arguments"
    EXPRESSION_TOO_LONG = "expression too long"
    TOO_MANY_TOKENS = "too many tokens"
    TOO_DEEP = "nesting too deep"
    TOO_MANY_EXPRESSIONS = "too many expressions"


class TemplateSyntaxError(Exception):
    """A template that cannot be compiled; ``offset`` is 0-based into the original string.

    ``path`` is the key path inside a value given to ``compile_value`` (empty otherwise) and
    ``source`` the whole string, so a loader can turn the offset into a line and a caret.
    """

    def __init__(
        self,
        message: str,
        offset: int,
        hint: str | None = None,
        kind: ErrorKind = ErrorKind.UNEXPECTED_TOKEN,
        source: str | None = None,
        path: tuple[str | int, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint
        self.kind = kind
        self.source = source
        self.path = path

    def __str__(self) -> str:
        text = f"{self.message} (at offset {self.offset})"
        return f"{text}; hint: {self.hint}" if self.hint else text

    def __reduce__(self):
        args = (self.message, self.offset, self.hint, self.kind, self.source, self.path)
        return (type(self), args)


class TemplateEvaluationError(Exception):
    """A compiled template that failed at run time (bad JSON, a placeholder with no value)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        if self.offset is None:
            return self.message
        return f"{self.message} (at offset {self.offset})"

    def __reduce__(self):
        return (type(self), (self.message, self.offset))

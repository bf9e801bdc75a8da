"""Turn the inside of one ``${{ ... }}`` into tokens.

The lexer, not a regex over the whole string, finds the closing ``}}``: that way a ``}}``
inside a string literal does not end the expression. Names may contain ``-`` (satellite
identifiers such as ``get-files-from-s3``), which is why there is no minus operator.
"""

from __future__ import annotations

import re
import string
from enum import Enum
from typing import Any, NamedTuple

from yaml_loader.templates.errors import ErrorKind, TemplateSyntaxError

MAX_EXPRESSION_LENGTH = 4096
MAX_TOKENS = 1000


class TokenKind(Enum):
    NAME = "name"
    NUMBER = "number"
    STRING = "string"
    DOT = "."
    LBRACKET = "["
    RBRACKET = "]"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    OPERATOR = "operator"
    NOT = "!"
    END = "}}"


class Token(NamedTuple):  # a tuple: cheaper to create than a frozen dataclass
    """One token; ``offset`` is into the original string, ``value`` the parsed literal."""

    kind: TokenKind
    text: str
    offset: int
    value: Any = None

    def describe(self) -> str:
        """How the token is named in "expected ..., found ..." messages."""
        if self.kind is TokenKind.NAME:
            return f"name '{self.text}'"
        if self.kind is TokenKind.NUMBER:
            return f"number {self.text}"
        if self.kind is TokenKind.STRING:
            text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
            return f"string {text}"
        return f"'{self.text}'"


_NAME_START = frozenset(string.ascii_letters + "_")
_DIGITS = frozenset(string.digits)
_NAME_CHARS = _NAME_START | _DIGITS | {"-"}
_NAME_TAIL = re.compile(r"[A-Za-z0-9_-]*")  # the rest of a name: _NAME_CHARS, at C speed
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">")
_PUNCTUATION = {
    ".": TokenKind.DOT,
    "[": TokenKind.LBRACKET,
    "]": TokenKind.RBRACKET,
    "(": TokenKind.LPAREN,
    ")": TokenKind.RPAREN,
    ",": TokenKind.COMMA,
}
_CHARACTER_HINTS = {
    "=": "use '==' to compare two values",
    "&": "use '&&' for 'and'",
    "|": "use '||' for 'or'",
    "-": "'-' is part of names (get-files-from-s3); there is no minus operator",
    "+": "there is no arithmetic; use format() to build strings",
    "}": "close the expression with '}}'",
    "{": "an expression cannot contain '{'; use format('{0}', value) for braces in text",
}


def lex_expression(source: str, start: int, opener: int) -> tuple[list[Token], int]:
    """Tokens from ``source[start:]`` up to and including the closing ``}}`` (an END token).

    ``opener`` is the offset of the ``${{`` (or ``$${{``), used in errors about the whole
    expression. Returns the tokens and the offset just after ``}}``.
    """
    tokens: list[Token] = []
    pos = start
    size = len(source)
    while True:
        while pos < size and source[pos].isspace():
            pos += 1
        _check_length(pos, start, opener)
        if pos >= size:
            raise TemplateSyntaxError(
                f"'${{{{' at offset {opener} is never closed with '}}}}'",
                opener,
                hint="end the expression with '}}'",
                kind=ErrorKind.UNTERMINATED_EXPRESSION,
            )
        if source.startswith("}}", pos):
            tokens.append(Token(TokenKind.END, "}}", pos))
            return tokens, pos + 2
        if len(tokens) >= MAX_TOKENS:
            raise TemplateSyntaxError(
                f"expression has more than {MAX_TOKENS} tokens",
                pos,
                hint="split it into several smaller expressions",
                kind=ErrorKind.TOO_MANY_TOKENS,
            )
        after_dot = bool(tokens) and tokens[-1].kind is TokenKind.DOT
        token = _next_token(source, pos, after_dot)
        _check_length(pos + len(token.text), start, opener)
        tokens.append(token)
        pos += len(token.text)


def _check_length(pos: int, start: int, opener: int) -> None:
    if pos - start > MAX_EXPRESSION_LENGTH:
        raise TemplateSyntaxError(
            f"expression is longer than {MAX_EXPRESSION_LENGTH} characters",
            opener,
            hint="move long text out of the expression",
            kind=ErrorKind.EXPRESSION_TOO_LONG,
        )


def _next_token(source: str, pos: int, after_dot: bool) -> Token:
    """The token starting at ``pos``; after a '.' a property name may start with a digit."""
    char = source[pos]
    if char in _NAME_START or (after_dot and char in _DIGITS):
        end = _NAME_TAIL.match(source, pos + 1).end()  # type: ignore[union-attr]  # matches ""
        return Token(TokenKind.NAME, source[pos:end], pos)
    if char in _DIGITS or (char == "-" and source[pos + 1 : pos + 2] in _DIGITS):
        return _number(source, pos)
    if char in "'\"":
        return _string(source, pos)
    if char in _PUNCTUATION:  # before the operators: '.' is the most common token
        return Token(_PUNCTUATION[char], char, pos)
    for operator in _OPERATORS:
        if source.startswith(operator, pos):
            return Token(TokenKind.OPERATOR, operator, pos, operator)
    if char == "!":
        return Token(TokenKind.NOT, "!", pos)
    raise TemplateSyntaxError(
        f"unexpected character {char!r} in expression",
        pos,
        hint=_CHARACTER_HINTS.get(char),
        kind=ErrorKind.UNEXPECTED_CHARACTER,
    )


def _number(source: str, pos: int) -> Token:
    match = _NUMBER.match(source, pos)
    assert match is not None  # the caller saw a digit
    end = match.end()
    if end < len(source) and source[end] in _NAME_CHARS:
        while end < len(source) and source[end] in _NAME_CHARS:
            end += 1
        raise TemplateSyntaxError(
            f"expected a number or a name, found {source[pos:end]!r}",
            pos,
            hint="names start with a letter or '_'",
            kind=ErrorKind.UNEXPECTED_CHARACTER,
        )
    text = match.group()
    if len(text) > MAX_EXPRESSION_LENGTH:  # keep int() away from huge digit strings
        raise TemplateSyntaxError(
            f"expression is longer than {MAX_EXPRESSION_LENGTH} characters",
            pos,
            kind=ErrorKind.EXPRESSION_TOO_LONG,
        )
    value = float(text) if any(c in text for c in ".eE") else int(text)
    return Token(TokenKind.NUMBER, text, pos, value)


def _string(source: str, pos: int) -> Token:
    """A quoted string; the quote character written twice stands for itself."""
    quote = source[pos]
    chunks: list[str] = []
    index = pos + 1
    while True:
        close = source.find(quote, index)
        if close < 0:
            raise TemplateSyntaxError(
                f"string starting at offset {pos} is never closed with {quote}",
                pos,
                hint=f"close the string with {quote}; write {quote}{quote} for a quote inside it",
                kind=ErrorKind.UNTERMINATED_STRING,
            )
        chunks.append(source[index:close])
        if source.startswith(quote * 2, close):
            chunks.append(quote)
            index = close + 2
            continue
        return Token(TokenKind.STRING, source[pos : close + 1], pos, "".join(chunks))

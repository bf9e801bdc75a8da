"""Recursive-descent parser: tokens of one expression to a syntax tree.

Precedence, loosest first: ``||``, ``&&``, ``== !=``, ``< <= > >=``, ``!``, then paths
(``.name``, ``[index]``) and calls. Roots and function names are checked here, so a typo is
a load-time error with its offset rather than a silent null at run time.
"""

from __future__ import annotations

from collections.abc import Sequence

from yaml_loader.errors import did_you_mean
from yaml_loader.templates.ast import Call, Chain, Context, Literal, Node, Not, Path
from yaml_loader.templates.errors import ErrorKind, TemplateSyntaxError
from yaml_loader.templates.functions import FUNCTIONS, check_format, lookup_function, to_text
from yaml_loader.templates.lexer import Token, TokenKind
from yaml_loader.templates.scope import ROOTS

ALLOWED_ROOTS = frozenset(ROOTS)
MAX_DEPTH = 32

_KEYWORDS = {"true": True, "false": False, "null": None}
_LEVELS = (("||",), ("&&",), ("==", "!="), ("<", "<=", ">", ">="))


def parse(tokens: Sequence[Token]) -> Node:
    """The tree of one expression; ``tokens`` end with the END token of its ``}}``."""
    return _Parser(tokens).parse()


class _Parser:
    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not TokenKind.END:
            self.index += 1
        return token

    def fail(self, expected: str, token: Token | None = None) -> TemplateSyntaxError:
        token = token or self.current
        return TemplateSyntaxError(f"expected {expected}, found {token.describe()}", token.offset)

    def expect(self, kind: TokenKind, expected: str) -> Token:
        if self.current.kind is not kind:
            raise self.fail(expected)
        return self.advance()

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TemplateSyntaxError(
                f"expression is nested more than {MAX_DEPTH} levels deep",
                token.offset,
                hint="simplify the expression",
                kind=ErrorKind.TOO_DEEP,
            )

    def parse(self) -> Node:
        if self.current.kind is TokenKind.END:
            raise self.fail("an expression between '${{' and '}}'")
        node = self.expression()
        if self.current.kind is not TokenKind.END:
            raise self.fail("an operator or '}}'")
        return node

    def expression(self, level: int = 0) -> Node:
        if level == len(_LEVELS):
            return self.unary()
        first = self.expression(level + 1)
        rest: list[tuple[str, Node]] = []
        while self.current.kind is TokenKind.OPERATOR and self.current.value in _LEVELS[level]:
            operator = self.advance().value
            if self.current.kind is TokenKind.END:
                raise self.fail(f"a value after '{operator}'")
            rest.append((operator, self.expression(level + 1)))
        return Chain(first, tuple(rest), _offset(first)) if rest else first

    def unary(self) -> Node:
        if self.current.kind is TokenKind.NOT:
            token = self.advance()
            self.enter(token)
            operand = self.unary()
            self.depth -= 1
            return Not(operand, token.offset)
        return self.postfix(self.primary())

    def postfix(self, base: Node) -> Node:
        segments: list[Node] = []
        while True:
            if self.current.kind is TokenKind.DOT:
                self.advance()
                name = self.current
                if name.kind is not TokenKind.NAME:
                    raise self.fail("a property name after '.'")
                self.advance()
                segments.append(Literal(name.text, name.offset))
            elif self.current.kind is TokenKind.LBRACKET:
                opening = self.advance()
                self.enter(opening)
                if self.current.kind is TokenKind.RBRACKET:
                    raise self.fail("an index or a quoted key inside '[ ]'")
                segments.append(self.expression())
                self.expect(TokenKind.RBRACKET, f"']' to close '[' at offset {opening.offset}")
                self.depth -= 1
            else:
                break
        return Path(base, tuple(segments), _offset(base)) if segments else base

    def primary(self) -> Node:
        token = self.current
        if token.kind in (TokenKind.NUMBER, TokenKind.STRING):
            self.advance()
            return Literal(token.value, token.offset)
        if token.kind is TokenKind.LPAREN:
            self.advance()
            self.enter(token)
            node = self.expression()
            self.expect(TokenKind.RPAREN, f"')' to close '(' at offset {token.offset}")
            self.depth -= 1
            return node
        if token.kind is TokenKind.NAME:
            self.advance()
            if self.current.kind is TokenKind.LPAREN:
                return self.call(token)
            if token.text in _KEYWORDS:
                return Literal(_KEYWORDS[token.text], token.offset)
            return self.root(token)
        raise self.fail("a value (a name, a string, a number, '(' or '!')")

    def root(self, token: Token) -> Context:
        name = token.text
        if name in ALLOWED_ROOTS:
            return Context(name, token.offset)
        function = lookup_function(name)
        if function is not None:
            hint = f"'{function.name}' is a function; call it as {function.name}(...)"
        elif name.lower() in _KEYWORDS:
            hint = f"did you mean '{name.lower()}'?"
        else:
            hint = did_you_mean(name, sorted(ALLOWED_ROOTS), ignore_case=True)
        if hint is None and name.isupper():
            hint = f"a secret is read as secrets.{name}"
        raise TemplateSyntaxError(
            f"unknown name '{name}'; available roots are: {', '.join(sorted(ALLOWED_ROOTS))}",
            token.offset,
            hint=hint,
            kind=ErrorKind.UNKNOWN_ROOT,
        )

    def call(self, name: Token) -> Call:
        function = lookup_function(name.text)
        if function is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise TemplateSyntaxError(
                f"unknown function '{name.text}'; available functions are: {known}",
                name.offset,
                hint=did_you_mean(name.text, list(FUNCTIONS), ignore_case=True),
                kind=ErrorKind.UNKNOWN_FUNCTION,
            )
        opening = self.advance()
        self.enter(opening)
        args: list[Node] = []
        if self.current.kind is not TokenKind.RPAREN:
            args.append(self.expression())
            while self.current.kind is TokenKind.COMMA:
                self.advance()
                args.append(self.expression())
        self.expect(TokenKind.RPAREN, f"',' or ')' to close the call of {function.name}()")
        self.depth -= 1
        too_many = function.max_args is not None and len(args) > function.max_args
        if len(args) < function.min_args or too_many:
            raise TemplateSyntaxError(
                f"{function.signature()}, found {len(args)}",
                name.offset,
                kind=ErrorKind.WRONG_ARGUMENTS,
            )
        if function.name == "format" and isinstance(args[0], Literal):
            problem = check_format(to_text(args[0].value), len(args) - 1)
            if problem:
                raise TemplateSyntaxError(
                    f"format(): {problem}", args[0].offset, kind=ErrorKind.WRONG_ARGUMENTS
                )
        return Call(function.name, tuple(args), name.offset)


def _offset(node: Node) -> int:
    return node.offset

from __future__ import annotations

import pytest

from yaml_loader.templates.lexer import TokenKind, lex_expression


def lex(body: str):
    """Tokens of ``${{<body>}}`` as (kind, text, value) tuples, without the END token."""
    text = "${{" + body + "}}"
    tokens, end = lex_expression(text, 3, 0)
    assert end == len(text)
    assert tokens[-1].kind is TokenKind.END
    return [(t.kind, t.text, t.value) for t in tokens[:-1]]


def test_path_with_hyphenated_names_is_three_names():
    assert lex("satellites.get-files-from-s3.output.file-path") == [
        (TokenKind.NAME, "satellites", None),
        (TokenKind.DOT, ".", None),
        (TokenKind.NAME, "get-files-from-s3", None),
        (TokenKind.DOT, ".", None),
        (TokenKind.NAME, "output", None),
        (TokenKind.DOT, ".", None),
        (TokenKind.NAME, "file-path", None),
    ]


def test_offsets_are_into_the_original_string():
    text = "head ${{ run.id }} tail"
    tokens, end = lex_expression(text, 8, 5)
    assert [(t.text, t.offset) for t in tokens] == [("run", 9), (".", 12), ("id", 13), ("}}", 16)]
    assert text[end:] == " tail"


def test_indexes_and_punctuation():
    kinds = [kind for kind, _, _ in lex("a[0]['k'](x, y)")]
    assert kinds == [
        TokenKind.NAME,
        TokenKind.LBRACKET,
        TokenKind.NUMBER,
        TokenKind.RBRACKET,
        TokenKind.LBRACKET,
        TokenKind.STRING,
        TokenKind.RBRACKET,
        TokenKind.LPAREN,
        TokenKind.NAME,
        TokenKind.COMMA,
        TokenKind.NAME,
        TokenKind.RPAREN,
    ]


@pytest.mark.parametrize(
    ("body", "operators"),
    [
        ("a<=b", ["<="]),
        ("a>=b", [">="]),
        ("a<b", ["<"]),
        ("a>b", [">"]),
        ("a==b", ["=="]),
        ("a!=b", ["!="]),
        ("a&&b||c", ["&&", "||"]),
    ],
)
def test_operators_take_the_longest_match(body, operators):
    found = [text for kind, text, _ in lex(body) if kind is TokenKind.OPERATOR]
    assert found == operators


def test_not_is_its_own_token():
    assert [k for k, _, _ in lex("!a")] == [TokenKind.NOT, TokenKind.NAME]


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ("'plain'", "plain"),
        ("'it''s'", "it's"),
        ("''", ""),
        ("''''", "'"),
        ('"double"', "double"),
        ('"say ""hi"""', 'say "hi"'),
        ("'a }} b'", "a }} b"),
        ("'${{ nested }}'", "${{ nested }}"),
        ("'multi\nline'", "multi\nline"),
    ],
)
def test_string_literals(body, value):
    assert lex(body) == [(TokenKind.STRING, body, value)]


def test_closing_braces_inside_a_string_do_not_end_the_expression():
    text = "${{ 'x}}y' }} after"
    tokens, end = lex_expression(text, 3, 0)
    assert tokens[0].value == "x}}y"
    assert text[end:] == " after"


@pytest.mark.parametrize(
    ("body", "value"),
    [("12", 12), ("0", 0), ("-3", -3), ("1.5", 1.5), ("-0.25", -0.25), ("1e3", 1000.0)],
)
def test_numbers(body, value):
    [(kind, _, found)] = lex(body)
    assert kind is TokenKind.NUMBER
    assert found == value
    assert type(found) is type(value)


def test_keywords_are_names_for_the_parser_to_decide():
    assert [(k, t) for k, t, _ in lex("true")] == [(TokenKind.NAME, "true")]


def test_a_property_name_after_a_dot_may_start_with_a_digit():
    assert lex("a.3d-model")[-1] == (TokenKind.NAME, "3d-model", None)


def test_whitespace_of_any_kind_is_skipped():
    assert [t for _, t, _ in lex(" \n\t a \r\n == \t b \n")] == ["a", "==", "b"]


def test_ascii_only_digits_so_superscripts_are_not_numbers():
    from yaml_loader.templates import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError):
        lex("\u00b2")

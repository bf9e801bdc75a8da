"""Property tests: compiling never fails in any way but TemplateSyntaxError, literals survive."""

from __future__ import annotations

import contextlib

from hypothesis import example, given
from hypothesis import strategies as st

from yaml_loader.templates import (
    CompiledTemplate,
    TemplateEvaluationError,
    TemplateSyntaxError,
    compile_template,
    compile_value,
    render,
    render_value,
)

# Pieces that make random text look like templates often enough to reach the parser.
PIECES = st.sampled_from(
    [
        "${{",
        "$${{",
        "}}",
        "}",
        "{",
        " ",
        "\n",
        "'",
        '"',
        "''",
        ".",
        "[",
        "]",
        "(",
        ")",
        ",",
        "!",
        "==",
        "<=",
        "&&",
        "||",
        "-",
        "0",
        "1.5",
        "-2",
        "true",
        "null",
        "run",
        "secrets",
        "satellites",
        "get-files-from-s3",
        "output",
        "join",
        "format",
        "toJSON",
        "fromJSON",
        "'{0}'",
        "\u00b2",
        "é",
    ]
)
RANDOM_BODY = st.lists(PIECES, max_size=12).map(" ".join)
TEMPLATE_LIKE = st.lists(
    st.one_of(
        PIECES,
        st.text(max_size=5),
        st.tuples(st.sampled_from(["${{", "$${{"]), RANDOM_BODY, st.sampled_from(["}}", ""])).map(
            "".join
        ),
    ),
    max_size=8,
).map("".join)

# Well-formed expressions, built from the grammar, that must always compile.
LEAVES = st.sampled_from(
    [
        "run.x",
        "run.x[0]",
        "run['x'][1]",
        "secrets.TOKEN",
        "satellites.get-files-from-s3.output.file-path",
        "true",
        "null",
        "1",
        "-2.5",
        "'s''q'",
        "'}}'",
    ]
)
OPERATORS = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&&", "||"])
UNARY_CALLS = st.sampled_from(["toJSON", "lower", "upper", "join", "format"])
BINARY_CALLS = st.sampled_from(["contains", "startsWith", "endsWith", "default", "join"])
EXPRESSIONS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.tuples(inner, OPERATORS, inner).map(" ".join),
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"!{e}"),
        inner.map(lambda e: f"run.x[{e}]"),
        st.tuples(UNARY_CALLS, inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(BINARY_CALLS, inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    ),
    max_leaves=12,
)
NO_OPENER = st.text().filter(lambda s: "${{" not in s)


def check_compile(text: str) -> CompiledTemplate | None:
    try:
        compiled = compile_template(text)
    except TemplateSyntaxError as error:
        assert 0 <= error.offset <= len(text)
        assert error.message
        return None
    if compiled is not None:
        assert compiled.source == text
        for reference in compiled.references:
            assert text[reference.offset :].startswith(reference.root)
    return compiled


@given(st.text())
def test_any_text_compiles_or_raises_a_syntax_error(text):
    check_compile(text)


@given(TEMPLATE_LIKE)
@example("${{ run }}${{ run[0] }}")
@example("${{ '}}' }}")
def test_template_like_text_compiles_or_raises_a_syntax_error(text):
    compiled = check_compile(text)
    if compiled is not None:
        # rendering needs no particular scope and only fails on function misuse
        with contextlib.suppress(TemplateEvaluationError):
            render(compiled, {"run": {"x": [1, "a"]}, "secrets": {}})


@given(st.lists(EXPRESSIONS, min_size=1, max_size=3), st.text(max_size=10))
def test_well_formed_expressions_compile_and_render(expressions, glue):
    glue = glue.replace("$", "").replace("{", "")
    text = glue.join("${{ " + e + " }}" for e in expressions)
    compiled = compile_template(text)
    assert len([p for p in compiled.parts if not isinstance(p, str)]) == len(expressions)
    with contextlib.suppress(TemplateEvaluationError):  # format() of a value with braces
        value = render(compiled, {"run": {"x": [1, "a"]}, "secrets": {"TOKEN": "t"}})
        assert compiled.whole or isinstance(value, str)


@given(NO_OPENER)
def test_text_without_an_opener_is_not_a_template(text):
    assert compile_template(text) is None
    assert compile_value(text) == text


@given(NO_OPENER.filter(lambda s: not s.endswith("$")), NO_OPENER)
def test_literal_text_around_an_expression_is_unchanged(before, after):
    compiled = compile_template(before + "${{ run.x }}" + after)
    assert compiled is not None
    assert render(compiled, {"run": {"x": "|"}}) == before + "|" + after


@given(st.text(max_size=1000))
def test_any_string_literal_round_trips(value):
    quoted = "'" + value.replace("'", "''") + "'"
    compiled = compile_template("${{ " + quoted + " }}")
    assert compiled.whole
    assert render(compiled, {}) == value


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | NO_OPENER,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(NO_OPENER, children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_plain_values_pass_through_compile_and_render(value):
    assert render_value(compile_value(value), {}) == value

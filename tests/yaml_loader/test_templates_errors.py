from __future__ import annotations

import pickle

import pytest

from yaml_loader.templates import (
    TemplateEvaluationError,
    TemplateSyntaxError,
    compile_template,
)
from yaml_loader.templates.compiler import MAX_EXPRESSIONS
from yaml_loader.templates.errors import ErrorKind
from yaml_loader.templates.lexer import MAX_EXPRESSION_LENGTH, MAX_TOKENS
from yaml_loader.templates.parser import MAX_DEPTH

ROOTS = "available roots are: cluster, failure, run, satellites, secrets"

# (source, kind, offset, text in the message, text in the hint or None for no hint)
CASES = [
    ("abc ${{ run.id", ErrorKind.UNTERMINATED_EXPRESSION, 4, "never closed with '}}'", "}}"),
    ("ab $${{ run.id }", ErrorKind.UNEXPECTED_CHARACTER, 15, "unexpected character '}'", "}}"),
    ("ab $${{ run.id", ErrorKind.UNTERMINATED_EXPRESSION, 3, "'${{' at offset 3", "}}"),
    ("${{ 'abc }}", ErrorKind.UNTERMINATED_STRING, 4, "string starting at offset 4", "''"),
    ("${{ run.a + 1 }}", ErrorKind.UNEXPECTED_CHARACTER, 10, "'+'", "no arithmetic"),
    ("${{ run.a = 1 }}", ErrorKind.UNEXPECTED_CHARACTER, 10, "'='", "'=='"),
    ("${{ run.a - 1 }}", ErrorKind.UNEXPECTED_CHARACTER, 10, "'-'", "no minus"),
    ("${{ run.a & run.b }}", ErrorKind.UNEXPECTED_CHARACTER, 10, "'&'", "'&&'"),
    ("${{ run.a | run.b }}", ErrorKind.UNEXPECTED_CHARACTER, 10, "'|'", "'||'"),
    ("${{ run.a # x }}", ErrorKind.UNEXPECTED_CHARACTER, 10, "'#'", None),
    ("${{ 12ab }}", ErrorKind.UNEXPECTED_CHARACTER, 4, "found '12ab'", "letter"),
    (
        "${{ run.a.] }}",
        ErrorKind.UNEXPECTED_TOKEN,
        10,
        "expected a property name after '.', found ']'",
        None,
    ),
    ("${{ run.a. }}", ErrorKind.UNEXPECTED_TOKEN, 11, "after '.', found '}}'", None),
    ("${{ }}", ErrorKind.UNEXPECTED_TOKEN, 4, "expected an expression", None),
    ("${{}}", ErrorKind.UNEXPECTED_TOKEN, 3, "found '}}'", None),
    (
        "${{ run.a run.b }}",
        ErrorKind.UNEXPECTED_TOKEN,
        10,
        "expected an operator or '}}', found name 'run'",
        None,
    ),
    ("${{ run.a == }}", ErrorKind.UNEXPECTED_TOKEN, 13, "a value after '=='", None),
    ("${{ == 1 }}", ErrorKind.UNEXPECTED_TOKEN, 4, "expected a value", None),
    ("${{ (run.a }}", ErrorKind.UNEXPECTED_TOKEN, 11, "')' to close '(' at offset 4", None),
    ("${{ run.a[0 }}", ErrorKind.UNEXPECTED_TOKEN, 12, "']' to close '[' at offset 9", None),
    ("${{ run.a[] }}", ErrorKind.UNEXPECTED_TOKEN, 10, "an index or a quoted key", None),
    ("${{ join(run.a, }}", ErrorKind.UNEXPECTED_TOKEN, 16, "expected a value", None),
    ("${{ join(run.a 'x') }}", ErrorKind.UNEXPECTED_TOKEN, 15, "',' or ')'", None),
    ("${{ secret.X }}", ErrorKind.UNKNOWN_ROOT, 4, ROOTS, "did you mean 'secrets'?"),
    ("${{ Satellites.x }}", ErrorKind.UNKNOWN_ROOT, 4, "unknown name 'Satellites'", "satellites"),
    ("x ${{ env.HOME }}", ErrorKind.UNKNOWN_ROOT, 6, ROOTS, None),
    ("${{ API_TOKEN }}", ErrorKind.UNKNOWN_ROOT, 4, ROOTS, "secrets.API_TOKEN"),
    ("${{ True }}", ErrorKind.UNKNOWN_ROOT, 4, "unknown name 'True'", "did you mean 'true'?"),
    ("${{ toJSON }}", ErrorKind.UNKNOWN_ROOT, 4, ROOTS, "call it as toJSON(...)"),
    ("${{ jion(run.a) }}", ErrorKind.UNKNOWN_FUNCTION, 4, "unknown function 'jion'", "'join'"),
    ("${{ eval('1') }}", ErrorKind.UNKNOWN_FUNCTION, 4, "available functions are:", None),
    ("${{ contains(run.a) }}", ErrorKind.WRONG_ARGUMENTS, 4, "takes 2 arguments, found 1", None),
    ("${{ join() }}", ErrorKind.WRONG_ARGUMENTS, 4, "takes 1 to 2 arguments, found 0", None),
    ("${{ format() }}", ErrorKind.WRONG_ARGUMENTS, 4, "at least 1 argument, found 0", None),
    ("${{ format('{0} {1}', run.a) }}", ErrorKind.WRONG_ARGUMENTS, 11, "{1} has no value", None),
    ("${{ format('{x}') }}", ErrorKind.WRONG_ARGUMENTS, 11, "invalid placeholder", None),
    ("${{ format('a}b') }}", ErrorKind.WRONG_ARGUMENTS, 11, "unmatched '}'", None),
]


@pytest.mark.parametrize(("source", "kind", "offset", "message", "hint"), CASES)
def test_syntax_errors(source, kind, offset, message, hint):
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template(source)
    error = caught.value
    assert (error.kind, error.offset) == (kind, offset)
    assert message in error.message
    if hint is None:
        assert error.hint is None
    else:
        assert hint in error.hint
    assert error.source == source
    assert error.path == ()


def test_error_in_a_later_expression_points_into_the_whole_string():
    source = "first ${{ run.ok }}\nsecond line ${{ run.ok == }}\n"
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template(source)
    assert caught.value.offset == source.index("}}", source.index("=="))


def test_str_and_pickle_keep_everything():
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template("${{ secret.X }}")
    error = caught.value
    assert str(error).startswith("unknown name 'secret'")
    assert "(at offset 4)" in str(error)
    assert "hint: did you mean 'secrets'?" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.offset, copy.hint, copy.kind, copy.source) == (
        error.message,
        error.offset,
        error.hint,
        error.kind,
        error.source,
    )
    runtime = pickle.loads(pickle.dumps(TemplateEvaluationError("bad", 3)))
    assert (runtime.message, runtime.offset, str(runtime)) == ("bad", 3, "bad (at offset 3)")


# limits -------------------------------------------------------------------------------


def expression_of_length(length: int) -> str:
    """``${{ 'aaa...' }}`` whose text between the delimiters is exactly ``length`` long."""
    return "${{ '" + "a" * (length - 4) + "' }}"


def test_expression_length_limit():
    assert compile_template(expression_of_length(MAX_EXPRESSION_LENGTH)) is not None
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template("xy " + expression_of_length(MAX_EXPRESSION_LENGTH + 1))
    assert (caught.value.kind, caught.value.offset) == (ErrorKind.EXPRESSION_TOO_LONG, 3)


def test_huge_number_is_too_long_not_a_crash():
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template("${{ " + "9" * 100_000 + " }}")
    assert caught.value.kind is ErrorKind.EXPRESSION_TOO_LONG


@pytest.mark.parametrize(
    ("opening", "closing"),
    [("(", ")"), ("join(", ")"), ("run.a[", "]"), ("!", "")],
)
def test_depth_limit(opening, closing):
    def nested(depth: int) -> str:
        return "${{ " + opening * depth + "1" + closing * depth + " }}"

    assert compile_template(nested(MAX_DEPTH)) is not None
    source = nested(MAX_DEPTH + 1)
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template(source)
    assert caught.value.kind is ErrorKind.TOO_DEEP
    # the offending token is the last character of the 33rd opening
    expected = len("${{ ") + len(opening) * MAX_DEPTH + len(opening) - 1
    assert caught.value.offset == expected


def test_token_limit():
    fits = "!" + "||".join(["1"] * 500)  # 1 + 500 + 499 tokens
    assert compile_template("${{ " + fits + " }}") is not None
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template("${{ !" + fits + " }}")
    assert caught.value.kind is ErrorKind.TOO_MANY_TOKENS
    assert MAX_TOKENS == 1000


def test_expression_count_limit():
    assert compile_template("${{ 1 }}" * MAX_EXPRESSIONS) is not None
    source = "${{ 1 }}" * MAX_EXPRESSIONS + " $${{ 2 }}"
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template(source)
    assert caught.value.kind is ErrorKind.TOO_MANY_EXPRESSIONS
    assert caught.value.offset == source.index("$${{")

from __future__ import annotations

import pytest

from yaml_loader.templates import compile_template, render
from yaml_loader.templates.ast import Call, Chain, Context, Literal, Not, Path


def tree(text: str):
    """The single expression tree of ``text``."""
    compiled = compile_template(text)
    assert compiled is not None
    nodes = [p for p in compiled.parts if not isinstance(p, str)]
    assert len(nodes) == 1
    return nodes[0]


def shape(node):
    """The tree without offsets, so expected values stay readable."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Context):
        return node.name
    if isinstance(node, Path):
        return (shape(node.base), *[shape(s) for s in node.segments])
    if isinstance(node, Not):
        return ("!", shape(node.operand))
    if isinstance(node, Chain):
        out = [shape(node.first)]
        for operator, operand in node.rest:
            out += [operator, shape(operand)]
        return tuple(out)
    if isinstance(node, Call):
        return (node.name + "()", *[shape(a) for a in node.args])
    raise AssertionError(node)


def test_path_with_hyphens():
    node = tree("${{ satellites.get-files-from-s3.output.file-path }}")
    assert shape(node) == ("satellites", "get-files-from-s3", "output", "file-path")
    assert isinstance(node, Path)
    assert [s.offset for s in node.segments] == [15, 33, 40]


@pytest.mark.parametrize(
    "text",
    ["${{ run.a['k'] }}", '${{ run.a["k"] }}', "${{ run.a.k }}", "${{ run . a . k }}"],
)
def test_key_spellings_are_equivalent(text):
    assert shape(tree(text)) == ("run", "a", "k")


def test_integer_index_stays_an_integer():
    assert shape(tree("${{ run.items[0].name }}")) == ("run", "items", 0, "name")


def test_computed_index():
    node = tree("${{ run.items[run.i] }}")
    assert shape(node) == ("run", "items", ("run", "i"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "${{ run.a || run.b && run.c }}",
            (("run", "a"), "||", (("run", "b"), "&&", ("run", "c"))),
        ),
        (
            "${{ (run.a || run.b) && run.c }}",
            ((("run", "a"), "||", ("run", "b")), "&&", ("run", "c")),
        ),
        (
            "${{ run.a == run.b && run.c }}",
            ((("run", "a"), "==", ("run", "b")), "&&", ("run", "c")),
        ),
        ("${{ run.a < 1 == true }}", ((("run", "a"), "<", 1), "==", True)),
        ("${{ !run.a == run.b }}", (("!", ("run", "a")), "==", ("run", "b"))),
        ("${{ !(run.a == run.b) }}", ("!", (("run", "a"), "==", ("run", "b")))),
        ("${{ 1 || 2 || 3 }}", (1, "||", 2, "||", 3)),
        ("${{ 1 == 2 != 3 }}", (1, "==", 2, "!=", 3)),
    ],
)
def test_precedence(text, expected):
    assert shape(tree(text)) == expected


def test_literals_and_keywords():
    assert shape(tree("${{ true }}")) is True
    assert shape(tree("${{ false }}")) is False
    assert shape(tree("${{ null }}")) is None
    assert shape(tree("${{ 'it''s' }}")) == "it's"
    assert shape(tree("${{ 2.5 }}")) == 2.5


def test_keywords_after_a_dot_are_property_names():
    assert shape(tree("${{ run.true.null }}")) == ("run", "true", "null")


def test_function_names_match_without_case_and_are_stored_canonically():
    assert shape(tree("${{ tojson(run) }}")) == ("toJSON()", "run")
    assert shape(tree("${{ join(run.a, ', ') }}")) == ("join()", ("run", "a"), ", ")
    assert shape(tree("${{ fromJSON(run.x).a[0] }}")) == (("fromJSON()", ("run", "x")), "a", 0)


@pytest.mark.parametrize("text", ["${{x}}", "${{  x  }}", "${{\n  x\n}}", "$${{x}}", "$${{ x }}"])
def test_whitespace_and_dollar_variants(text):
    source = text.replace("x", "run.id")
    compiled = compile_template(source)
    assert compiled.whole
    assert shape(tree(source)) == ("run", "id")
    assert render(compiled, {"run": {"id": "r-1"}}) == "r-1"


def test_double_dollar_is_consumed_in_text():
    compiled = compile_template("path/$${{ run.id }}/x and ${{ run.id }}")
    assert render(compiled, {"run": {"id": 7}}) == "path/7/x and 7"
    assert compiled.parts[0] == "path/"


def test_a_third_dollar_stays_literal():
    compiled = compile_template("$$${{ run.id }}")
    assert render(compiled, {"run": {"id": "x"}}) == "$x"
    assert not compiled.whole


def test_parts_alternate_text_and_trees():
    compiled = compile_template("a ${{ run.x }} b ${{ run.y }}")
    assert [p if isinstance(p, str) else shape(p) for p in compiled.parts] == [
        "a ",
        ("run", "x"),
        " b ",
        ("run", "y"),
    ]
    assert not compiled.whole


def test_no_template_means_none():
    assert compile_template("plain text with $ and {{ braces }}") is None
    assert compile_template("") is None

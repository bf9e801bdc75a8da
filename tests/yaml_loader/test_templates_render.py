from __future__ import annotations

import math

import pytest

from yaml_loader.templates import TemplateEvaluationError, compile_template, render

SCOPE = {
    "satellites": {
        "get-files-from-s3": {"output": {"file-path": "sec/q1.pdf", "file-name": "q1.pdf"}},
        "parse-pdf-with-docling": {"output": "# Report\n\nRevenue up."},
        "deepseek": {"output": {"company": "Aikin", "revenue": 12.5, "tags": ["a", "b"]}},
    },
    "secrets": {"API_BEARER_TOKEN": "tok"},
    "cluster": {"identifier": "quarterly", "trigger": "2026-01-01T00:00:00Z"},
    "run": {
        "id": "r-1",
        "zero": 0,
        "one": 1,
        "half": 0.5,
        "two": 2.0,
        "empty": "",
        "none": None,
        "yes": True,
        "no": False,
        "list": [10, 20, 30],
        "obj": {"k": "v", "é": "ü"},
        "nan": math.nan,
        "json": '{"a": [1, 2]}',
        "words": ["x", 1, None, True],
    },
}


def ev(expression: str, scope=SCOPE):
    compiled = compile_template("${{ " + expression + " }}")
    assert compiled.whole
    return render(compiled, scope)


def text(expression: str, scope=SCOPE):
    compiled = compile_template("<${{ " + expression + " }}>")
    assert not compiled.whole
    return render(compiled, scope)[1:-1]


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("satellites.deepseek.output", SCOPE["satellites"]["deepseek"]["output"]),
        ("run.list", [10, 20, 30]),
        ("run.one", 1),
        ("run.half", 0.5),
        ("run.none", None),
        ("run.yes", True),
        ("run.id", "r-1"),
        ("satellites.deepseek.output.tags[1]", "b"),
    ],
)
def test_whole_value_keeps_its_type(expression, value):
    result = ev(expression)
    assert result == value
    assert type(result) is type(value)


def test_whole_allows_blanks_around_it_as_in_block_strings():
    compiled = compile_template("\n  ${{ run.list }}\n")
    assert compiled.whole
    assert render(compiled, SCOPE) == [10, 20, 30]


def test_whole_string_keeps_the_blanks_around_it():
    compiled = compile_template("${{ run.id }}\n")
    assert compiled.whole
    assert render(compiled, SCOPE) == "r-1\n"
    assert render(compiled, {"run": {"id": None}}) is None


def test_whole_container_is_a_copy():
    result = ev("satellites.deepseek.output")
    result["tags"].append("mutated")
    assert SCOPE["satellites"]["deepseek"]["output"]["tags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("expression", "rendered"),
    [
        ("run.none", ""),
        ("run.missing", ""),
        ("run.yes", "true"),
        ("run.no", "false"),
        ("run.id", "r-1"),
        ("run.one", "1"),
        ("run.zero", "0"),
        ("run.two", "2"),
        ("run.half", "0.5"),
        ("run.list", "[10,20,30]"),
        ("run.obj", '{"k":"v","é":"ü"}'),
        ("run.nan", "nan"),
    ],
)
def test_rendering_inside_text(expression, rendered):
    assert text(expression) == rendered


@pytest.mark.parametrize(
    "expression",
    [
        "run.missing",
        "run.missing.deeper[3]",
        "run.list[3]",
        "run.list[-1]",
        "run.list['0']",
        "run.id.length",
        "run.id[0]",
        "run.obj[run.list]",
        "satellites.unknown.output",
        "failure.error",
    ],
)
def test_missing_values_read_as_null(expression):
    assert ev(expression) is None


def test_float_index_that_is_integral_indexes_a_list():
    assert ev("run.list[1.0]") == 20


def test_missing_root_in_scope_reads_as_null():
    assert ev("failure.error", {"run": {}}) is None


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("run.one == 1", True),
        ("run.one == 1.0", True),
        ("run.id == 'r-1'", True),
        ("run.id == 'R-1'", False),
        ("run.id != 'x'", True),
        ("run.none == null", True),
        ("run.list == run.list", True),
        ("run.one < 2", True),
        ("run.one <= 1", True),
        ("run.one > 1", False),
        ("run.one >= 1", True),
        ("'a' < 'b'", True),
        ("'b' <= 'a'", False),
        ("run.one < 'b'", False),
        ("run.one > 'b'", False),
        ("run.none < 1", False),
        ("run.yes > 0", False),
        ("run.list < run.list", False),
    ],
)
def test_comparisons(expression, value):
    assert ev(expression) is value


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("run.id && run.one", 1),
        ("run.empty && run.one", ""),
        ("run.zero || run.id", "r-1"),
        ("run.id || run.one", "r-1"),
        ("run.none || run.empty", ""),
        ("run.none && run.missing.x", None),
        ("run.yes && run.no || 'fallback'", "fallback"),
    ],
)
def test_and_or_return_operand_values(expression, value):
    assert ev(expression) == value
    assert type(ev(expression)) is type(value)


@pytest.mark.parametrize(
    ("operand", "negated"),
    [
        ("run.none", True),
        ("run.no", True),
        ("run.zero", True),
        ("run.empty", True),
        ("run.nan", True),
        ("run.yes", False),
        ("run.one", False),
        ("run.id", False),
        ("run.list", False),
        ("run.obj", False),
        ("'false'", False),
    ],
)
def test_not_follows_truthiness(operand, negated):
    assert ev("!" + operand) is negated
    assert ev("!!" + operand) is (not negated)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("toJSON(run.obj)", '{"k":"v","é":"ü"}'),
        ("toJSON(run.list)", "[10,20,30]"),
        ("fromJSON(run.json)", {"a": [1, 2]}),
        ("fromJSON(run.json).a[1]", 2),
        ("join(run.list)", "10,20,30"),
        ("join(run.words, ' | ')", "x | 1 |  | true"),
        ("join(run.id, '-')", "r-1"),
        ("format('{0} and {1}', run.id, run.one)", "r-1 and 1"),
        ("format('{{literal}} {0}{0}', 'x')", "{literal} xx"),
        ("contains(run.list, 20)", True),
        ("contains(run.list, 21)", False),
        ("contains(run.id, '-')", True),
        ("contains(run.obj, 'k')", True),
        ("contains(run.obj, 'v')", False),
        ("startsWith(run.id, 'r-')", True),
        ("startsWith(run.id, 'x')", False),
        ("endsWith(satellites.get-files-from-s3.output.file-name, '.pdf')", True),
        ("lower('MiXeD')", "mixed"),
        ("upper(run.id)", "R-1"),
        ("default(run.none, 'fb')", "fb"),
        ("default(run.empty, 'fb')", "fb"),
        ("default(run.missing, run.list)", [10, 20, 30]),
        ("default(run.zero, 'fb')", 0),
        ("default(run.no, 'fb')", False),
        ("default(run.id, 'fb')", "r-1"),
    ],
)
def test_functions(expression, value):
    result = ev(expression)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fromJSON(run.id)", "fromJSON() could not parse"),
        ("fromJSON(run.list)", "fromJSON() expected a string, found list"),
        ("format(run.id, 1)", None),
        ("format(format('{0}{1}', '{', '0}'))", "placeholder {0} has no value"),
        ("format(join(run.words, '}'))", "unmatched '}'"),
    ],
)
def test_evaluation_errors(expression, message):
    if message is None:  # a template without placeholders is fine
        assert ev(expression) == "r-1"
        return
    with pytest.raises(TemplateEvaluationError) as caught:
        ev(expression)
    assert message in caught.value.message
    assert caught.value.offset == 4


def test_readme_failure_message():
    source = (
        "Cluster ${{cluster.identifier}} failed at ${{cluster.trigger}} for file "
        "$${{satellites.get-files-from-s3.output.file-path}}  with error "
        "${{satellites.get-files-from-s3.output.error}}, file has been moved to failure "
        "bucket with path $${{satellites.move-to-failure-bucket.output.file-uri}}\n"
    )
    scope = dict(SCOPE)
    scope["satellites"] = dict(SCOPE["satellites"])
    scope["satellites"]["move-to-failure-bucket"] = {"output": {"file-uri": "s3://f/q1.pdf"}}
    assert render(compile_template(source), scope) == (
        "Cluster quarterly failed at 2026-01-01T00:00:00Z for file sec/q1.pdf  with error , "
        "file has been moved to failure bucket with path s3://f/q1.pdf\n"
    )


def test_readme_prompt_block_string_renders_text():
    source = (
        "Parse the following report, text is provided below:\n"
        "${{satellites.parse-pdf-with-docling.output}}\n"
    )
    compiled = compile_template(source)
    assert not compiled.whole
    assert render(compiled, SCOPE) == (
        "Parse the following report, text is provided below:\n# Report\n\nRevenue up.\n"
    )


def test_bearer_header():
    compiled = compile_template("Bearer ${{ secrets.API_BEARER_TOKEN }}")
    assert render(compiled, SCOPE) == "Bearer tok"


def test_rendering_is_pure_and_repeatable():
    compiled = compile_template("${{ format('{0}', run.id) }} ${{ toJSON(run.obj) }}")
    first = render(compiled, SCOPE)
    assert render(compiled, SCOPE) == first
    assert render(compiled, {"run": {"id": "other"}}) == "other null"


def test_long_chains_do_not_recurse_deeply():
    deep: dict = {}
    node = deep
    for _ in range(400):
        node["a"] = {}
        node = node["a"]
    node["a"] = "bottom"
    assert ev("run" + ".a" * 401, {"run": deep}) == "bottom"
    assert ev(" || ".join(["null"] * 450 + ["'last'"])) == "last"

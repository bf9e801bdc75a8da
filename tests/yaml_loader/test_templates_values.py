from __future__ import annotations

import copy

import pytest

from yaml_loader.templates import (
    ALLOWED_ROOTS,
    CompiledTemplate,
    Reference,
    TemplateSyntaxError,
    compile_template,
    compile_value,
    has_template,
    iter_templates,
    render_value,
)

CONFIG = {
    "url": "https://api.example.com",
    "retries": 3,
    "enabled": True,
    "missing": None,
    "headers": [{"Authorization": "Bearer ${{ secrets.API_BEARER_TOKEN }}"}],
    "body": [
        {
            "data": "${{satellites.deepseek.output}}",
            "file-path": "$${{satellites.get-files-from-s3.output.file-path}}",
        }
    ],
    "secrets": [
        {"AWS_ACCESS_KEY": "${{ secrets.AWS_ACCESS_KEY }}"},
        {"AWS_SECRET_KEY": "${{ secrets.AWS_SECRET_KEY }}"},
    ],
    "pair": ("plain", "${{ run.id }}"),
}
SCOPE = {
    "secrets": {"API_BEARER_TOKEN": "tok", "AWS_ACCESS_KEY": "ak", "AWS_SECRET_KEY": "sk"},
    "satellites": {
        "deepseek": {"output": {"revenue": 12.5}},
        "get-files-from-s3": {"output": {"file-path": "sec/q1.pdf"}},
    },
    "run": {"id": "r-9"},
}


def test_allowed_roots():
    assert frozenset({"secrets", "satellites", "cluster", "run", "failure"}) == ALLOWED_ROOTS


def test_has_template():
    assert has_template("a ${{ run.id }}")
    assert has_template("$${{ run.id }}")
    assert not has_template("a {{ run.id }} $ {")


def test_compile_value_replaces_only_templated_strings():
    original = copy.deepcopy(CONFIG)
    compiled = compile_value(CONFIG)
    assert original == CONFIG
    assert compiled["url"] == "https://api.example.com"
    assert compiled["retries"] == 3 and compiled["enabled"] is True and compiled["missing"] is None
    assert isinstance(compiled["headers"][0]["Authorization"], CompiledTemplate)
    assert isinstance(compiled["body"][0]["data"], CompiledTemplate)
    assert isinstance(compiled["pair"], tuple)
    assert compiled["pair"][0] == "plain"
    assert isinstance(compiled["pair"][1], CompiledTemplate)


def test_iter_templates_gives_key_paths_in_order():
    paths = [path for path, _ in iter_templates(compile_value(CONFIG))]
    assert paths == [
        ("headers", 0, "Authorization"),
        ("body", 0, "data"),
        ("body", 0, "file-path"),
        ("secrets", 0, "AWS_ACCESS_KEY"),
        ("secrets", 1, "AWS_SECRET_KEY"),
        ("pair", 1),
    ]


def test_iter_templates_of_a_bare_template_and_of_plain_data():
    template = compile_template("${{ run.id }}")
    assert list(iter_templates(template)) == [((), template)]
    assert list(iter_templates({"a": [1, "x"]})) == []


def test_render_value_builds_plain_data():
    compiled = compile_value(CONFIG)
    rendered = render_value(compiled, SCOPE)
    assert rendered == {
        "url": "https://api.example.com",
        "retries": 3,
        "enabled": True,
        "missing": None,
        "headers": [{"Authorization": "Bearer tok"}],
        "body": [{"data": {"revenue": 12.5}, "file-path": "sec/q1.pdf"}],
        "secrets": [{"AWS_ACCESS_KEY": "ak"}, {"AWS_SECRET_KEY": "sk"}],
        "pair": ("plain", "r-9"),
    }
    assert rendered["headers"] is not compiled["headers"]
    assert isinstance(compiled["headers"][0]["Authorization"], CompiledTemplate)


def test_compile_value_of_a_plain_string():
    assert compile_value("no template") == "no template"
    assert isinstance(compile_value("${{ run.id }}"), CompiledTemplate)


@pytest.mark.parametrize(
    ("value", "path", "offset"),
    [
        ({"a": [{"b": "${{ nope }}"}]}, ("a", 0, "b"), 4),
        ([1, "ok", "x ${{ run.id"], (2,), 2),
        ("${{ 'x' + 1 }}", (), 8),
    ],
)
def test_compile_value_errors_carry_the_key_path(value, path, offset):
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_value(value)
    assert caught.value.path == path
    assert caught.value.offset == offset


# references ---------------------------------------------------------------------------


def refs(source: str) -> list[tuple[str, tuple]]:
    return [(r.root, r.path) for r in compile_template(source).references]


def test_references_of_the_readme_failure_message():
    source = (
        "Cluster ${{cluster.identifier}} failed at ${{cluster.trigger}} for file "
        "$${{satellites.get-files-from-s3.output.file-path}} with error "
        "${{satellites.get-files-from-s3.output.error}}"
    )
    compiled = compile_template(source)
    assert [(r.root, r.path) for r in compiled.references] == [
        ("cluster", ("identifier",)),
        ("cluster", ("trigger",)),
        ("satellites", ("get-files-from-s3", "output", "file-path")),
        ("satellites", ("get-files-from-s3", "output", "error")),
    ]
    for reference in compiled.references:
        assert source[reference.offset :].startswith(reference.root + ".")


def test_reference_is_a_frozen_value():
    [reference] = compile_template("${{ secrets.TOKEN }}").references
    assert reference == Reference("secrets", ("TOKEN",), 4)
    with pytest.raises(AttributeError):
        reference.root = "run"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("${{ secrets }}", [("secrets", ())]),
        ("${{ satellites.a.output[0]['k'] }}", [("satellites", ("a", "output", 0, "k"))]),
        (
            "${{ satellites.a.output[run.key].x }}",
            [("satellites", ("a", "output")), ("run", ("key",))],
        ),
        ("${{ satellites.a.output[true].x }}", [("satellites", ("a", "output"))]),
        ("${{ toJSON(secrets.TOKEN) }}", [("secrets", ("TOKEN",))]),
        ("${{ fromJSON(run.x).a.b }}", [("run", ("x",))]),
        ("${{ (run.a).b }}", [("run", ("a",))]),
        (
            "${{ !failure.error && run.id == cluster.sla || 'x' }}",
            [("failure", ("error",)), ("run", ("id",)), ("cluster", ("sla",))],
        ),
        ("${{ 'literal' }} and ${{ 1 == 2 }}", []),
    ],
)
def test_references(source, expected):
    assert refs(source) == expected


def test_reference_offsets_point_at_each_root():
    source = "${{ satellites.a.output[run.key] }}"
    offsets = [r.offset for r in compile_template(source).references]
    assert offsets == [source.index("satellites"), source.index("run")]

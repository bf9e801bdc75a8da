"""Hostile YAML: constructs that make PyYAML's constructor raise, or that JSON cannot hold.

``fixtures/hostile`` is a folder in the style of the yaml-test-suite: one complete cluster file per
case, each wrong in exactly one YAML-level way, plus ``good.yml``, which uses the constructs that
must keep working (merge keys with overrides, dates kept as text, ``<<`` and ``=`` as values).
Every broken file must come back as ConfigErrors located at the construct (file:line:col and key
path), from both parsers, from ``exosphere validate FOLDER`` (which still validates the good file)
and from the code location (the good cluster's job is built, each broken file is an
``invalid__*`` job). A hypothesis test then puts generated hostile scalars at any value of a valid
file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satellite_ops.registry import default_registry
from yaml_loader import ConfigErrors, load, load_text, plan, source
from yaml_loader.errors import ConfigError, format_key_path

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
GOOD = HOSTILE / "good.yml"
EXOSPHERE = Path(sys.executable).with_name("exosphere")
REGISTRY = default_registry()
WEBHOOK = "cluster.satellites[0].config"

# file stem -> (line, column, key path, words of the message)
CASES: dict[str, tuple[int, int, str, str]] = {
    # scalars PyYAML's constructor rejects with ValueError, KeyError, AttributeError, IndexError
    "date-out-of-range": (12, 16, f"{WEBHOOK}.body.due", "'2024-02-30' reads as a date but is not a valid one"),
    "time-out-of-range": (6, 10, "cluster.title", "hour must be in 0..23"),
    "timezone-out-of-range": (11, 20, f"{WEBHOOK}.body.at", "not a valid one: offset"),
    "timestamp-tag-garbage": (11, 20, f"{WEBHOOK}.body.at", "'soon' is not a date or timestamp"),
    "int-tag-not-a-number": (6, 12, "cluster.retries", "'12x' is not an integer"),
    "int-tag-empty": (6, 12, "cluster.retries", "'' is not an integer"),
    "float-tag-not-a-number": (11, 26, f"{WEBHOOK}.timeout-seconds", "'abc' is not a number"),
    "bool-tag-not-a-boolean": (11, 21, f"{WEBHOOK}.verify-tls", "'maybe' is not a boolean"),
    "null-tag-with-text": (6, 10, "cluster.title", "'forgotten' is not null"),
    "integer-5000-digits": (11, 23, f"{WEBHOOK}.max-attempts", "integer with 5000 digits is too long"),
    "binary-integer-20000-digits": (11, 23, f"{WEBHOOK}.max-attempts", "digits is too long"),
    # numbers JSON cannot hold
    "nan-where-a-number-is-expected": (11, 26, f"{WEBHOOK}.timeout-seconds", "'.nan' is not a finite number"),
    "infinity-where-a-number-is-expected": (11, 33, f"{WEBHOOK}.max-retry-wait-seconds", "'-.inf' is not a finite number"),
    "float-overflows-to-infinity": (6, 10, "cluster.delay", "'1.0e+999' is not a finite number"),
    # tags
    "binary-bad-base64": (11, 22, f"{WEBHOOK}.body.blob", "tag '!!binary' is not supported"),
    "binary-valid": (11, 22, f"{WEBHOOK}.body.blob", "tag '!!binary' is not supported"),
    "python-object-apply": (11, 15, f"{WEBHOOK}.body", "tag '!!python/object/apply:os.system' is not allowed"),
    "python-name": (11, 17, f"{WEBHOOK}.method", "tag '!!python/name:os.system' is not allowed"),
    "python-tag-on-key": (11, 11, WEBHOOK, "mapping keys must be plain strings"),
    "unknown-local-tag": (11, 22, f"{WEBHOOK}.body.note", "unknown tag '!foo'"),
    "unknown-tag-on-mapping": (11, 18, f"{WEBHOOK}.headers", "unknown tag '!vault'"),
    "unknown-tag-on-key": (6, 3, "cluster", "unknown tag '!secret'"),
    "tag-directive-unknown-prefix": (13, 22, f"{WEBHOOK}.body.note", "unknown tag '!<tag:example.com,2000:thing>'"),
    "str-tag-on-mapping": (11, 15, f"{WEBHOOK}.body", "tag '!!str' does not fit a mapping"),
    "set": (11, 21, f"{WEBHOOK}.body.ids", "tag '!!set' is not supported"),
    "omap-bad-shape": (11, 23, f"{WEBHOOK}.body.order", "tag '!!omap' is not supported"),
    "pairs": (11, 23, f"{WEBHOOK}.body.order", "tag '!!pairs' is not supported"),
    "yaml-version-directive": (1, 1, "<document>", "incompatible YAML document"),
    # anchors, aliases and merge keys
    "merge-scalar": (12, 11, f"{WEBHOOK}.body.<<", "merge key '<<' needs a mapping or a list of mappings"),
    "merge-list-with-a-scalar": (13, 11, f"{WEBHOOK}.body.<<", "merge key '<<' needs a mapping"),
    "merge-into-itself": (13, 11, f"{WEBHOOK}.body.<<", "merges a mapping into itself"),
    "duplicate-key-after-merge": (15, 11, f"{WEBHOOK}.headers.Accept", "duplicate key 'Accept'"),
    "duplicate-anchor": (7, 16, "<document>", "anchor '&t' is defined twice (first at line 6)"),
    "undefined-alias": (11, 15, "<document>", "alias '*nowhere' refers to no anchor"),
    "alias-cycle": (11, 15, f"{WEBHOOK}.body[1]", "an alias refers to a value that contains it"),
    "alias-bomb": (1, 55, "x4", "document expands to more than 100000 nodes"),
    "merge-bomb": (1, 54, "m4", "document expands to more than 100000 nodes"),
    "deep-aliases": (1, 10, "d63", "document is nested deeper than 64 levels"),
    # characters and encodings
    "byte-order-mark-inside": (6, 13, "<document>", "invisible byte-order mark (U+FEFF)"),
    "tab-indentation": (11, 1, "<document>", "YAML syntax error"),
    "utf-16": (1, 1, "<document>", "file is not valid UTF-8 text"),
}  # fmt: skip

# where the pure-Python parser's wording differs from libyaml's (positions are the same)
PURE_PYTHON_WORDS = {"tab-indentation": "YAML syntax error"}


def errors_of(path: Path) -> list[ConfigError]:
    try:
        plan(load(path), REGISTRY)
    except ConfigErrors as exc:
        assert exc.errors, "ConfigErrors raised with no error in it"
        return exc.errors
    raise AssertionError(f"{path.name} loaded without error")


def assert_located(errors: list[ConfigError], path: Path, expected: tuple) -> None:
    line, column, key_path, words = expected
    for error in errors:
        if (error.line, error.column) == (line, column) and words in error.message:
            assert format_key_path(error.key_path).startswith(key_path), str(error)
            assert error.file == str(path)
            assert str(error).startswith(f"{path}:{line}:{column}: ")
            return
    found = "\n".join(str(e) for e in errors)
    raise AssertionError(f"expected {line}:{column} {key_path}: ...{words}... among:\n{found}")


def test_every_hostile_fixture_has_a_case() -> None:
    assert {p.stem for p in HOSTILE.glob("*.yml")} == {*CASES, "good"}


@pytest.mark.parametrize("loader", ["libyaml", "pure-python"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_yaml_is_a_located_error(
    name: str, loader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if loader == "pure-python":
        monkeypatch.setattr(source, "YAML_LOADER", yaml.SafeLoader)
    path = HOSTILE / f"{name}.yml"
    line, column, key_path, words = CASES[name]
    if loader == "pure-python":
        words = PURE_PYTHON_WORDS.get(name, words)
    assert_located(errors_of(path), path, (line, column, key_path, words))


def test_errors_name_the_fix() -> None:
    """A hint for every reader-level refusal: quote it, remove the tag, rename the anchor..."""
    hints = {name: [e.hint for e in errors_of(HOSTILE / f"{name}.yml")] for name in CASES}
    assert "quote it ('2024-02-30') if it is meant as text" in hints["date-out-of-range"]
    assert "remove the !!int tag to keep the text" in hints["int-tag-not-a-number"]
    assert "give each anchor its own name" in hints["duplicate-anchor"]
    assert "write a list: [a, b, c]" in hints["set"]
    assert "save the file as UTF-8" in hints["utf-16"]
    missing = [name for name, found in hints.items() if not any(found)]
    assert missing == []


def test_the_good_file_keeps_yaml_meanings_that_json_can_hold() -> None:
    cluster = plan(load(GOOD), REGISTRY)
    first, second = cluster.nodes
    body = load(GOOD).spec.satellites[0].config["body"]
    assert body["due"] == "2024-02-29"  # a date stays the text written (YAML 1.2, JSON, editors)
    assert body["at"] == "2024-01-01T10:00:00Z"
    assert body["big"] == int("9" * 400)
    assert (body["left"], body["eq"]) == ("<<", "=")
    merged = load(GOOD).spec.satellites[1].config
    assert merged["url"] == "https://example.com/other"  # a key written beside '<<' wins
    assert merged["timeout-seconds"] == 5.5 and merged["body"] == body
    assert {first.id, second.id} == {"notify", "notify-again"}


def test_merge_sources_listed_first_win() -> None:
    text = """\
a: &a {x: 1, y: 1}
b: &b {x: 2, z: 2}
c:
  <<: [*a, *b]
  y: 3
"""
    data, _ = source.read_yaml_text(text, "merge.yml")
    assert data["c"] == {"x": 1, "y": 3, "z": 2}


# -- a folder of hostile files: the CLI and the code location --------------------------------


def test_validate_reports_every_hostile_file_and_still_validates_the_good_one() -> None:
    result = subprocess.run(
        [str(EXOSPHERE), "validate", str(HOSTILE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"ok: {GOOD}" in result.stdout
    for name, (line, column, _key_path, _words) in CASES.items():
        assert f"{HOSTILE / name}.yml:{line}:{column}: " in result.stderr, f"{name} not reported"


def test_the_code_location_loads_the_good_cluster_and_shows_each_hostile_file() -> None:
    from exosphere_dagster.definitions import build_definitions

    repo = build_definitions(HOSTILE).get_repository_def()
    names = {job.name for job in repo.get_all_jobs()}
    assert "hostile__good" in names
    for name, (line, column, _key_path, _words) in CASES.items():
        job = repo.get_job("invalid__" + re.sub(r"[^A-Za-z0-9_]", "_", name))
        assert f"{name}.yml:{line}:{column}: " in job.description


# -- generated hostile scalars at any value of a valid file ----------------------------------

VALID = """\
version: 0.0.1b
cluster:
  identifier: tests/generated
  sla: 12h
  title: generated
  trigger: {cron: "0 * * * *"}
  retries: 2
  delay: 5s
  satellites:
    - uses: satellite/exospherehost/call-webhook
      identifier: notify
      retries: 1
      config:
        url: https://example.com/hook
        timeout-seconds: 5
        verify-tls: true
        body: {note: hello, count: 3}
"""
VALUE_LINES = [i for i, line in enumerate(VALID.splitlines()) if re.search(r": \S", line)]

dates = st.builds(
    "{:04d}-{:02d}-{:02d}".format,
    st.integers(0, 9999),
    st.integers(13, 99) | st.integers(0, 0),
    st.integers(1, 28),
) | st.builds(
    "{:04d}-{:02d}-{:02d}".format, st.integers(1, 9999), st.integers(1, 12), st.integers(32, 99)
)
words = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
ALWAYS_BAD = st.one_of(
    dates,
    words.map(lambda w: f"!!int {w}x"),
    words.map(lambda w: f"!!float {w}x"),
    words.filter(lambda w: w not in yaml.constructor.SafeConstructor.bool_values).map(
        lambda w: f"!!bool {w}"
    ),
    words.map(lambda w: f"!!timestamp {w}"),
    words.map(lambda w: f"!{w} value"),
    words.map(lambda w: f"!!python/object:{w}.X {{}}"),
    words.map(lambda w: f"!!{w}x [1]"),
    st.sampled_from([".nan", ".NaN", ".inf", "-.Inf", "+.INF", "1.5e+999", "-2.0E+400"]),
    st.sampled_from(["!!set {a, b}", "!!omap [1]", "!!pairs [[a, 1]]", "!!binary aGk=", "*ghost"]),
    st.integers(4301, 6000).map(lambda n: "7" * n),
    st.sampled_from(["{<<: 1}", "{<<: [x]}", "!!str [1]", "!!map [1]", "!!seq {a: 1}"]),
)
ANY_SCALAR = st.one_of(
    ALWAYS_BAD,
    st.from_regex(r"!!(int|float|bool|null|timestamp|str) [-+.:_0-9a-zA-Z]{0,12}", fullmatch=True),
    st.from_regex(r"[-+]?[0-9_.:eE]{1,12}", fullmatch=True),
)


def _with_value(line_index: int, value: str) -> str:
    lines = VALID.splitlines()
    key = lines[line_index].split(": ", 1)[0]
    lines[line_index] = f"{key}: {value}"
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALUE_LINES), ALWAYS_BAD)
def test_a_hostile_scalar_anywhere_is_reported_on_its_line(line_index: int, value: str) -> None:
    text = _with_value(line_index, value)
    try:
        plan(load_text(text, "generated.yml"), REGISTRY)
    except ConfigErrors as exc:
        lines = {e.line for e in exc.errors}
        assert line_index + 1 in lines, f"{value!r}:\n" + str(exc)
        return
    raise AssertionError(f"{value!r} at line {line_index + 1} was accepted")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALUE_LINES), ANY_SCALAR)
def test_any_tagged_or_numeric_scalar_gives_a_plan_or_located_errors(
    line_index: int, value: str
) -> None:
    text = _with_value(line_index, value)
    try:
        plan(load_text(text, "generated.yml"), REGISTRY)
    except ConfigErrors as exc:
        for error in exc.errors:
            assert error.file == "generated.yml" and error.line >= 1 and error.column >= 1

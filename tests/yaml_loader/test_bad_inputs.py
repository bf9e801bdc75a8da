"""Bad cluster files: one fixture file per case, each reported as a located ConfigError.

Every case is loaded and planned with the real registry. It must raise ConfigErrors (never
another exception), and among its errors there must be the expected one: at the right line
(and column where given), under the right key path, with the right words in its message.
Cases that would be wasteful to commit (5 MB, deep nesting, bad bytes) are generated.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from satellite_ops.registry import default_registry
from yaml_loader import ConfigErrors, load, plan, source
from yaml_loader.errors import ConfigError, format_key_path
from yaml_loader.source import MAX_DEPTH

ROOT = Path(__file__).resolve().parents[2]
BAD = Path(__file__).parent / "fixtures" / "bad"
EXOSPHERE = Path(sys.executable).with_name("exosphere")
FIXED_EXAMPLE = ROOT / "examples" / "structured-pdfs-fixed.yml"

# file name (without .yml) -> (line, column or None, key path, substring of the message)
CASES: dict[str, tuple[int, int | None, str, str]] = {
    # YAML itself
    "syntax-bad-indentation": (12, 8, "<document>", "YAML syntax error"),
    "syntax-unclosed-flow-sequence": (13, 11, "<document>", "flow sequence started at line 12"),
    "syntax-tab-indentation": (11, 1, "<document>", "cannot start any token"),
    "syntax-unclosed-quote": (15, 1, "<document>", "quoted scalar started at line 7"),
    "multi-document": (15, 1, "<document>", "expected a single document"),
    "empty": (1, 1, "<document>", "file is empty"),
    "top-level-list": (2, 1, "<document>", "a cluster file must be a mapping"),
    "duplicate-key": (12, 9, "cluster.satellites[0].config.bucket", "duplicate key 'bucket'"),
    "billion-laughs": (4, None, "cluster.e", "document expands to more than 100000 nodes"),
    # wrong types
    "type-sla-integer": (5, 8, "cluster.sla", "invalid value for 'sla'"),
    "type-retries-string": (8, 12, "cluster.retries", "wrong type for 'retries'"),
    "type-satellites-mapping": (9, 5, "cluster.satellites", "wrong type for 'satellites'"),
    "type-config-list": (11, 9, "cluster.satellites[0].config", "wrong type for 'config'"),
    "type-trigger-integer": (6, 12, "cluster.trigger", "wrong type for 'trigger'"),
    "negative-retries": (10, 16, "cluster.satellites[0].retries", "greater than or equal to 0"),
    "bad-delay": (10, 14, "cluster.satellites[0].delay", "expected a duration"),
    # unknown keys (with a did-you-mean, checked in test_unknown_keys_suggest_the_right_key)
    "unknown-key-top-level": (3, 1, "clustr", "unknown key 'clustr'"),
    "unknown-key-cluster": (8, 3, "cluster.retires", "unknown key 'retires'"),
    "unknown-key-satellite": (10, 7, "cluster.satellites[0].identifer", "unknown key 'identifer'"),
    "unknown-key-trigger": (8, 5, "cluster.trigger.timezon", "unknown key 'timezon'"),
    # missing keys: reported at the mapping that lacks them
    "missing-identifier": (3, 1, "cluster", "missing required key 'identifier'"),
    "missing-sla": (3, 1, "cluster", "missing required key 'sla'"),
    "missing-trigger": (3, 1, "cluster", "missing required key 'trigger'"),
    "missing-satellites": (3, 1, "cluster", "missing required key 'satellites'"),
    "missing-uses": (12, 7, "cluster.satellites[1]", "missing required key 'uses'"),
    # values of the format
    "unsupported-version": (2, 10, "version", "unsupported version '0.2.0'"),
    "bad-sla": (5, 8, "cluster.sla", "invalid value for 'sla'"),
    "bad-cluster-identifier": (4, 15, "cluster.identifier", "expected 'project/name'"),
    "cluster-identifier-too-long": (4, 15, "cluster.identifier", "at most 100 characters"),
    "satellite-identifier-too-long": (9, 19, "cluster.satellites[0].identifier", "at most 100 characters"),
    "bad-satellite-identifier": (10, 19, "cluster.satellites[0].identifier", "'Fetch Files'"),
    "bad-cron": (7, 11, "cluster.trigger.cron", "expected a cron expression"),
    "cron-never-fires": (7, 11, "cluster.trigger.cron", "never fires"),
    "cron-seconds-field": (7, 11, "cluster.trigger.cron", "expected five cron fields"),
    "bad-timezone": (8, 15, "cluster.trigger.timezone", "unknown IANA timezone 'Mars/Olympus'"),
    "two-triggers": (7, 5, "cluster.trigger", "exactly one trigger"),
    "secrets-entry-two-keys": (9, 5, "cluster.secrets", "must be a single 'NAME: value' pair"),
    "malformed-uses": (12, 13, "cluster.satellites[1].uses", "expected 'satellite/<project>/<name>'"),
    # satellites, registry and config models
    "unknown-uses": (12, 13, "cluster.satellites[1].uses", "unknown satellite 'satellite/exospherehost/call-webhok'"),
    "duplicate-satellite-identifier": (12, 13, "cluster.satellites[1].uses", "duplicate satellite identifier 'get-files-from-s3'"),
    "identifier-op-name-clash": (14, 19, "cluster.satellites[1].identifier", "clashes with 'list-files' as Dagster op 'list_files'"),
    "reserved-satellite-identifier": (9, 19, "cluster.satellites[0].identifier", "node name the project adds"),
    "dagster-reserved-satellite-identifier": (9, 19, "cluster.satellites[0].identifier", "a name Dagster refuses"),
    # resources: Kubernetes quantities (yaml_loader/quantities.py)
    "resources-cpu-not-quantity": (13, 14, "cluster.satellites[0].resources.cpu", "'lots' is not a Kubernetes quantity"),
    "resources-memory-bad-unit": (13, 17, "cluster.satellites[0].resources.memory", "'12XB' is not a Kubernetes quantity"),
    "resources-gpu-fraction": (13, 14, "cluster.satellites[0].resources.gpu", "1.5 is not a whole number"),
    "config-unknown-key": (12, 9, "cluster.satellites[0].config.recursve", "unknown key 'recursve'"),
    "config-wrong-type": (12, 20, "cluster.satellites[0].config.recursive", "valid boolean"),
    # templates: positions point at the expression (or the reference) inside the value
    "template-unterminated": (14, 34, "cluster.satellites[1].config.url", "never closed with '}}'"),
    "template-unknown-function": (15, 19, "cluster.satellites[1].config.body", "unknown function 'toYAML'"),
    "template-unknown-root": (18, 39, "cluster.satellites[1].config.headers[0].Authorization", "unknown name 'secret'"),
    "template-bad-token": (15, 60, "cluster.satellites[1].config.body", "unexpected character '+'"),
    "template-bad-output-field": (15, 19, "cluster.satellites[1].config.body", "'satellites.get-files-from-s3.outputs' is not available"),
    "template-unknown-cluster-field": (14, 38, "cluster.satellites[1].config.url", "'cluster.identifer' is not available"),
    "template-block-scalar-position": (18, 21, "cluster.satellites[1].config.body", "'satellites.list-files' names an unknown satellite"),
    # references and the graph
    "ref-unknown-satellite": (15, 19, "cluster.satellites[1].config.body", "'satellites.get-files-from-s4' names an unknown satellite"),
    "ref-not-an-ancestor": (17, 24, "cluster.satellites[1].config.body.deleted", "'satellites.delete-file-from-s3' is not an ancestor of 'call-webhook'"),
    "ref-own-output": (15, 19, "cluster.satellites[1].config.body", "references its own output"),
    "undeclared-secret": (18, 39, "cluster.satellites[1].config.headers[0].Authorization", "secret 'API_TOKEN' is not declared"),
    "failure-root-outside-branch": (15, 19, "cluster.satellites[1].config.body", "'failure' values exist only in the failure branch"),
    "failure-reads-downstream": (22, 21, "cluster.failure.satellites[0].config.body", "'satellites.call-webhook' is not an ancestor of 'report-failure'"),
    "main-reads-failure-branch": (15, 19, "cluster.satellites[1].config.body", "'satellites.report-failure' is not an ancestor"),
    "logs-read-satellite-output": (23, 31, "cluster.logs.satellites[0].config.application-id", "log satellites have no items"),
    "failure-from-unknown": (16, 11, "cluster.failure.from", "'failure.from' names unknown satellite 'parse-pdf'"),
    "parents-unknown": (13, 17, "cluster.satellites[1].parents[0]", "unknown satellite 'get-file-from-s3'"),
    "cycle": (18, 7, "cluster.satellites[2]", "satellites form a cycle: archive -> list -> archive"),
}  # fmt: skip

HINTS = {
    "syntax-tab-indentation": "YAML does not allow tabs for indentation: use spaces",
    "multi-document": "a cluster file holds one YAML document: remove the '---' or split the file",
    "unknown-key-top-level": "did you mean 'cluster'?",
    "unknown-key-cluster": "did you mean 'retries'?",
    "unknown-key-satellite": "did you mean 'identifier'?",
    "unknown-key-trigger": "did you mean 'timezone'?",
    "config-unknown-key": "did you mean 'recursive'?",
    "unknown-uses": "did you mean 'satellite/exospherehost/call-webhook'?",
    "template-unknown-root": "did you mean 'secrets'?",
    "template-unknown-cluster-field": "did you mean 'identifier'?",
    "ref-unknown-satellite": "did you mean 'get-files-from-s3'?",
    "parents-unknown": "did you mean 'get-files-from-s3'?",
    "type-sla-integer": "did you mean '6h'?",
}


def load_and_plan(path: Path) -> None:
    plan(load(path), default_registry())


def errors_of(path: Path) -> list[ConfigError]:
    try:
        load_and_plan(path)
    except ConfigErrors as exc:
        assert exc.errors, "ConfigErrors raised with no error in it"
        return exc.errors
    raise AssertionError(f"{path.name} loaded without error")


def assert_reported(
    errors: list[ConfigError],
    file: Path,
    line: int,
    column: int | None,
    key_path: str,
    message: str,
) -> ConfigError:
    """The error matching the expectation; on failure, show every error that was found."""
    for error in errors:
        if (
            error.line == line
            and (column is None or error.column == column)
            and format_key_path(error.key_path).startswith(key_path)
            and message in error.message
        ):
            assert error.file == str(file)
            assert str(error).startswith(f"{file}:{error.line}:{error.column}: {key_path}")
            return error
    found = "\n".join(str(e) for e in errors)
    raise AssertionError(f"expected {line}:{column} {key_path}: ...{message}... among:\n{found}")


def test_every_fixture_has_a_case() -> None:
    assert {p.stem for p in BAD.glob("*.yml")} == set(CASES)
    assert len(CASES) >= 45


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_reported_where_it_is(name: str) -> None:
    line, column, key_path, message = CASES[name]
    path = BAD / f"{name}.yml"
    error = assert_reported(errors_of(path), path, line, column, key_path, message)
    if column is None:  # a key path with list indexes after it (the alias expansion)
        return
    assert format_key_path(error.key_path) == key_path


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_pure_python_yaml_parser_reports_the_same_places(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without libyaml the loader falls back to PyYAML's parser: same lines and key paths
    (syntax errors are worded differently by the two parsers)."""
    monkeypatch.setattr(source, "YAML_LOADER", yaml.SafeLoader)
    line, column, key_path, message = CASES[name]
    path = BAD / f"{name}.yml"
    syntax = key_path == "<document>" and name not in ("empty", "top-level-list")
    assert_reported(errors_of(path), path, line, column, key_path, "" if syntax else message)


@pytest.mark.parametrize("name", sorted(HINTS))
def test_typos_come_with_a_did_you_mean(name: str) -> None:
    hints = [e.hint for e in errors_of(BAD / f"{name}.yml")]
    assert HINTS[name] in hints


def test_every_format_error_of_a_file_is_reported_together(tmp_path: Path) -> None:
    text = (BAD / "unknown-key-cluster.yml").read_text().replace("sla: 6h", "sla: 5h")
    path = tmp_path / "two-problems.yml"
    path.write_text(text)
    messages = [e.message for e in errors_of(path)]
    assert any("retires" in m for m in messages)
    assert any("'sla'" in m for m in messages)


def test_the_duplicate_identifier_is_the_only_error() -> None:
    """A graph keyed by identifier must not be built from duplicates (no phantom cycle)."""
    errors = errors_of(BAD / "duplicate-satellite-identifier.yml")
    assert [e.message for e in errors] == ["duplicate satellite identifier 'get-files-from-s3'"]


# -- generated cases -------------------------------------------------------------------------

VALID_HEAD = (
    "version: 0.0.1b\ncluster:\n  identifier: tests/generated\n  sla: 6h\n  trigger: api-call\n"
)


def _too_large(path: Path) -> None:
    path.write_text(VALID_HEAD + "  description: " + "x" * 5_000_000 + "\n")


def _deep_flow(path: Path) -> None:  # past libyaml's limit, or PyYAML's recursive composer
    path.write_text(VALID_HEAD + "  tags: " + "[" * 2000 + "]" * 2000 + "\n")


def _deep_block(path: Path) -> None:  # within the composer's reach, past the reader's limit
    nested = "".join("  " * (i + 2) + f"k{i}:\n" for i in range(MAX_DEPTH + 10))
    path.write_text(VALID_HEAD + "  tags:\n" + nested)


def _control_character(path: Path) -> None:
    path.write_text(VALID_HEAD + "  title: bell\x07\n")


def _not_utf8(path: Path) -> None:
    path.write_bytes(VALID_HEAD.encode() + b"  title: caf\xe9\n")


GENERATED: dict[str, tuple[Callable[[Path], None], int, int | None, str, str]] = {
    "too-large": (_too_large, 1, 1, "<document>", "file is too large"),
    "deep-flow": (_deep_flow, 6, None, "<document>", "nest"),
    "deep-block": (_deep_block, 70, None, "cluster.tags", f"nested deeper than {MAX_DEPTH} levels"),
    "not-utf8": (_not_utf8, 1, 1, "<document>", "not valid UTF-8"),
    "control-character": (
        _control_character,
        6,
        14,
        "<document>",
        "character #x0007 is not allowed",
    ),
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_bad_input(name: str, tmp_path: Path) -> None:
    make, line, column, key_path, message = GENERATED[name]
    path = tmp_path / f"{name}.yml"
    make(path)
    assert_reported(errors_of(path), path, line, column, key_path, message)


def test_deep_nesting_never_escapes_as_recursion_error_from_the_pure_python_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "YAML_LOADER", yaml.SafeLoader)
    path = tmp_path / "deep.yml"
    _deep_flow(path)
    message = f"document is nested deeper than {MAX_DEPTH} levels"
    column = len("  tags: ") + MAX_DEPTH  # the first bracket too deep for the reader
    assert_reported(errors_of(path), path, 6, column, "<document>", message)


def test_too_large_text_is_refused_before_parsing() -> None:
    from yaml_loader import load_text

    with pytest.raises(ConfigErrors, match="file is too large"):
        load_text(VALID_HEAD + "  description: " + "x" * 2_000_000 + "\n", "big.yml")


# -- the CLI: one bad file never breaks the others -------------------------------------------


def exosphere(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXOSPHERE), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_cli_reports_every_bad_file_and_still_validates_the_good_one(tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    generated.mkdir()
    for name, (make, *_rest) in GENERATED.items():
        make(generated / f"{name}.yml")
    result = exosphere("validate", str(BAD), str(generated), str(FIXED_EXAMPLE))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    for path in [*BAD.glob("*.yml"), *generated.glob("*.yml")]:
        assert f"{path}:" in result.stderr, f"{path.name} not reported"
    assert f"ok: {FIXED_EXAMPLE}" in result.stdout
    for line in result.stderr.splitlines():
        if line.startswith(str(BAD)):
            file, line_no, column, rest = line.split(":", 3)
            assert line_no.isdigit() and column.isdigit() and rest.startswith(" ")

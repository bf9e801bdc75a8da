"""The files in examples/: the verbatim reference example fails only on its two undeclared
PagerDuty secrets (reported with their lines), its fixed copy validates and plans."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from satellite_ops.registry import default_registry
from yaml_loader import ConfigErrors, load, plan
from yaml_loader.errors import format_key_path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
REFERENCE = EXAMPLES / "structured-pdfs.yml"
FIXED = EXAMPLES / "structured-pdfs-fixed.yml"
EXOSPHERE = Path(sys.executable).with_name("exosphere")

# secret name -> (line, column) of its ${{ secrets.NAME }} in the reference example, config key
UNDECLARED = {
    "PAGERDUTY_API_KEY": (139, 40, "pagerduty-api-key"),
    "PAGERDUTY_SERVICE_ID": (140, 43, "pagerduty-service-id"),
}


def exosphere(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXOSPHERE), *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_the_positions_are_those_of_the_file() -> None:
    lines = REFERENCE.read_text().splitlines()
    for name, (line, column, _key) in UNDECLARED.items():
        assert lines[line - 1].index(f"secrets.{name}") + 1 == column


def test_reference_example_fails_only_on_the_undeclared_pagerduty_secrets() -> None:
    with pytest.raises(ConfigErrors) as raised:
        plan(load(REFERENCE), default_registry())
    errors = raised.value.errors
    assert len(errors) == 2
    for error, (name, (line, column, key)) in zip(errors, UNDECLARED.items(), strict=True):
        assert (error.line, error.column) == (line, column)
        assert format_key_path(error.key_path) == f"cluster.failure.satellites[1].config.{key}"
        assert error.message == f"secret '{name}' is not declared in cluster.secrets"
        assert error.hint == f"add '- {name}: env:{name}' under cluster.secrets"


def test_every_example_plans_except_the_verbatim_reference() -> None:
    files = sorted(EXAMPLES.glob("*.yml"))
    assert FIXED in files and REFERENCE in files
    for path in files:
        if path != REFERENCE:
            assert plan(load(path), default_registry()).nodes


def test_cli_validate_reference_example_exits_1_naming_both_secrets() -> None:
    result = exosphere("validate", "examples/structured-pdfs.yml")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    for name, (line, column, key) in UNDECLARED.items():
        assert (
            f"examples/structured-pdfs.yml:{line}:{column}: cluster.failure.satellites[1].config."
            f"{key}: secret '{name}' is not declared in cluster.secrets"
        ) in result.stderr
    assert "2 errors in 1 file(s)" in result.stderr


def test_cli_validate_fixed_example_exits_0() -> None:
    result = exosphere("validate", "examples/structured-pdfs-fixed.yml")
    assert result.returncode == 0, result.stderr
    assert "ok: examples/structured-pdfs-fixed.yml (aikin/strucutred-pdfs, 5 satellites)" in (
        result.stdout
    )
    assert "error" not in result.stderr


def test_cli_plan_prints_graph_failure_branch_trigger_and_sla() -> None:
    result = exosphere("plan", "examples/structured-pdfs-fixed.yml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "cluster aikin/strucutred-pdfs  (job aikin__strucutred_pdfs" in out
    assert "sla: 6h (priority 30, max runtime 21600s)" in out
    assert "trigger: cron '0 0 * * *'" in out
    expected_parents = {
        "get-files-from-s3": "(run input)",
        "parse-pdf-with-docling": "get-files-from-s3",
        "deepseek-r1-distrill-llama-70b": "parse-pdf-with-docling",
        "call-webhook": "deepseek-r1-distrill-llama-70b",
        "delete-file-from-s3": "call-webhook",
        "move-to-failure-bucket": "(failed items)",
        "send-pagerduty-alert": "move-to-failure-bucket",
        "send-logs-to-new-relic": "(log records)",
    }
    lines = out.splitlines()
    for sat, parents in expected_parents.items():
        line = next(line for line in lines if line.strip().startswith(f"{sat}  ["))
        assert f"parents: {parents}  " in line
    main = lines[lines.index("  satellites:") + 1 : lines.index("  satellites:") + 6]
    assert [line.split()[0] for line in main] == list(expected_parents)[:5]
    assert (
        "failure branch (from parse-pdf-with-docling; items failing at: parse-pdf-with-docling, "
        "deepseek-r1-distrill-llama-70b, call-webhook, delete-file-from-s3)"
    ) in out
    assert "retries: 5" in next(
        line for line in lines if "deepseek-r1-distrill-llama-70b  [" in line
    )
    assert "dagster/priority=30" in out and "exosphere/sla=6h" in out

"""A secret's value never lands anywhere Dagster keeps or shows things: not in the instance's
files (SQLite run and event storage, compute logs, pickled step outputs, checkpoints), the run
config, the run tags, the event log, nor the process's own stdout/stderr. The satellite that uses
it does its worst: logs it, prints it, and raises an exception that quotes it.
"""

from __future__ import annotations

import json
import re
import secrets as random_secrets
from pathlib import Path

import pytest
from dagster._serdes import serialize_value

from clusters import cluster, failure_branch, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file

pytestmark = pytest.mark.integration


def _cluster(tmp_path: Path, name: str, var: str, *, handled: bool) -> Path:
    """``use-secret`` reads ``LEAK_TOKEN`` (from ``var``) and fails for the input named ``bad``;
    ``after-secret`` names no secret. ``handled`` routes the failure to ``on-failure``."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    use_secret = {
        "token": "${{ secrets.LEAK_TOKEN }}",
        "out_dir": out_dir,
        "fail": "${{ run.input.name == 'bad' }}",
    }
    after_secret = {"out_dir": out_dir, "label": "$${{ satellites.use-secret.output.name }}"}
    on_failure = satellite_entry(
        "satellite/e2e/secret-free",
        "on-failure",
        {"out_dir": out_dir, "label": "${{ failure.error }}"},
    )
    leak = cluster(
        f"e2e/secret-leak-{name}",
        [
            satellite_entry("satellite/e2e/secret-user", "use-secret", use_secret),
            satellite_entry("satellite/e2e/secret-free", "after-secret", after_secret),
        ],
        retries=1,
        delay=0,
        secrets={"LEAK_TOKEN": f"env:{var}", "NEVER_NAMED": f"env:{var}_NOT_SET"},
        failure=failure_branch("use-secret", [on_failure]) if handled else None,
    )
    return write_cluster(tmp_path, f"{name}.yml", leak)


def _files_containing(root: Path, needle: bytes) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*"))
        if path.is_file() and needle in path.read_bytes()
    ]


@pytest.mark.parametrize(
    ("handled", "multiprocess"),
    [
        pytest.param(True, False, id="routed"),
        pytest.param(False, False, id="unhandled"),
        pytest.param(False, True, id="unhandled-multiprocess", marks=pytest.mark.slow),
    ],
)
def test_secret_value_appears_nowhere(
    tmp_path, monkeypatch, capfd, dagster_home, sqlite_instance, handled, multiprocess
):
    value = f"s3cr3t-{random_secrets.token_hex(16)}"
    var = f"E2E_LEAK_{random_secrets.token_hex(4).upper()}"
    monkeypatch.setenv(var, value)
    monkeypatch.delenv(var + "_NOT_SET", raising=False)
    path = _cluster(tmp_path, "routed" if handled else "unhandled", var, handled=handled)

    result = run_cluster_file(
        path,
        [{"name": "good"}, {"name": "bad"}],
        instance=sqlite_instance,
        multiprocess=multiprocess,
    )

    instance = sqlite_instance
    run = instance.get_run_by_id(result.run_id)
    tags = run.tags
    # the run did what it should, so the searches below look at real material
    assert result.success is handled
    if handled:
        assert (tags["exosphere/succeeded"], tags["exosphere/routed"]) == ("1", "1")
    else:  # the chunk step is red, naming the item; the good one went on; the summary counted
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        (failure,) = [e for e in failures if e.step_key.startswith("use_secret[")]
        assert "bad~" in failure.event_specific_data.error.message
        assert (tags["exosphere/succeeded"], tags["exosphere/failed"]) == ("1", "1")
    out = tmp_path / "out"
    seen = [json.loads(p.read_text()) for p in sorted(out.glob("secret-free-*.json"))]
    assert len(seen) == (2 if handled else 1)  # a red chunk's good item goes on
    records = instance.all_logs(result.run_id)
    messages = [r.user_message or "" for r in records]
    attempts = [m for m in messages if re.search(r"attempt \d+/\d+ failed", m)]
    assert len(attempts) == 2  # retried once, then final; both say what went wrong
    assert all("RuntimeError: upstream rejected token *** for bad" in m for m in attempts)
    assert sum("using token ***" in m for m in messages) == 3  # 1 + 2 attempts, redacted
    assert sum("token again via args: ***" in m for m in messages) == 3

    # a satellite that names no secret gets none, and its config holds none
    for entry in seen:
        assert entry["secrets"] == {}
        assert value not in json.dumps(entry)
    if handled:
        (routed,) = [e for e in seen if e["config"]["label"].startswith("RuntimeError")]
        assert routed["config"]["label"] == "RuntimeError: upstream rejected token *** for bad"

    # nothing Dagster stored or showed holds the value
    assert value not in json.dumps(run.run_config)
    assert value not in json.dumps(dict(tags))
    for record in records:
        assert value not in (record.user_message or "")
        assert value not in serialize_value(record)
    checkpoints = list(dagster_home.rglob("*.ckpt"))
    compute_logs = [p for p in (dagster_home / "compute_logs").rglob("*") if p.is_file()]
    assert checkpoints and compute_logs  # both were written, and are searched below
    assert any(b"stdout token ***" in p.read_bytes() for p in compute_logs)
    assert _files_containing(dagster_home, value.encode()) == []
    assert _files_containing(out, value.encode()) == []
    captured = capfd.readouterr()
    assert "using token ***" in captured.err  # the console logger wrote the redacted line
    assert value not in captured.out
    assert value not in captured.err

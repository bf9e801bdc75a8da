"""Secrets with quotes, backslashes, non-ASCII letters and spaces stay out of everything Dagster
keeps or shows, in every form they are written in (repr, JSON, URL, base64), through a real
multiprocess run: satellite A names the secrets and returns them, satellite B names none and
spills what A gave it from another process, which must redact secrets it never resolved.

What a satellite returns is its output: the pickled step outputs and checkpoints hold it, as
docs/runtime.md says; every other file under DAGSTER_HOME must hold none of it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as random_secrets
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from dagster import DagsterEventType
from dagster._serdes import serialize_value
from leaky_satellites import spilled

from clusters import cluster, failure_branch, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _secrets() -> dict[str, str]:
    """Each ends in a random hex core: every escaped form keeps it verbatim."""
    return {
        "QUOTES": f"q'u\"o\\te d\u00e9j\u00e0 {random_secrets.token_hex(12)}",
        "APOSTROPHE": f"it's a\\path \u00fcber {random_secrets.token_hex(12)}",  # no "
        "BASIC": f"svc-user:p@ss w0rd/{random_secrets.token_hex(12)}",  # a Basic auth pair
    }


def _forms(value: str) -> set[str]:
    """The forms searched for, written out here rather than taken from the code under test."""
    utf8 = value.encode()
    return {
        value,
        repr(value)[1:-1],
        repr('"' + value)[2:-1],  # single-quoted, ' escaped, whatever the value holds
        ascii(value)[1:-1],
        repr(utf8)[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(json.dumps(value))[2:-1],
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(utf8).decode(),
    }


def _needles(values: dict[str, str]) -> set[bytes]:
    """Byte strings whose presence means a leak: every form, and each value's hex core (which
    any partial or differently escaped copy still carries)."""
    needles = {value.rsplit(" ", 1)[-1].rsplit("/", 1)[-1].encode() for value in values.values()}
    for value in values.values():
        needles |= {form.encode() for form in _forms(value)}
    return needles


def _hits(path: Path, needles: set[bytes]) -> bool:
    data = path.read_bytes()
    return any(needle in data for needle in needles)


def _forms_cluster(prefix: str, sink_dir: Path) -> dict:
    """``leak-source`` returns three secrets (read from ``<prefix>_<NAME>``), ``leak-echo`` names
    none and spills what it got; failures go to ``routed``, every log record to the sink."""
    tokens = ["${{ secrets.QUOTES }}", "${{ secrets.APOSTROPHE }}", "${{ secrets.BASIC }}"]
    routed = {"error": "${{ failure.error }}"}
    sink = {"mode": "write", "out_dir": sink_dir}
    return cluster(
        "e2e/secret-forms",
        [
            satellite_entry("satellite/e2e/leak-source", "leak-source", {"tokens": tokens}),
            satellite_entry("satellite/e2e/leak-echo", "leak-echo"),
        ],
        retries=0,
        delay=0,
        secrets={
            name: f"env:{prefix}_{name}" for name in ("QUOTES", "APOSTROPHE", "BASIC", "NOT_SET")
        },
        failure=failure_branch(
            "leak-source", [satellite_entry("satellite/e2e/leak-routed", "routed", routed)]
        ),
        logs=[satellite_entry("satellite/e2e/broken-sink", "sink", sink)],
    )


@pytest.fixture(autouse=True)
def leaky_satellites(satellite_modules):
    satellite_modules("e2e_satellites", "leaky_satellites")


def _write_cluster(tmp_path: Path, monkeypatch, values: dict[str, str]) -> Path:
    prefix = f"E2E_FORMS_{random_secrets.token_hex(4).upper()}"
    for name, value in values.items():
        monkeypatch.setenv(f"{prefix}_{name}", value)
    monkeypatch.delenv(f"{prefix}_NOT_SET", raising=False)
    (tmp_path / "sink").mkdir()
    return write_cluster(tmp_path, "secret-forms.yml", _forms_cluster(prefix, tmp_path / "sink"))


@pytest.fixture
def forms_cluster(tmp_path, monkeypatch) -> tuple[Path, dict[str, str]]:
    values = _secrets()
    return _write_cluster(tmp_path, monkeypatch, values), values


def test_every_form_of_every_secret_is_redacted_in_every_step(
    forms_cluster, capfd, dagster_home, sqlite_instance
):
    path, values = forms_cluster
    inputs = [{"name": "good"}, {"name": "bad"}, {"name": "echo-bad"}]

    result = run_cluster_file(path, inputs, instance=sqlite_instance, multiprocess=True)

    run = sqlite_instance.get_run_by_id(result.run_id)
    assert result.success, "both failures are routed to the failure branch"
    assert run.tags["exosphere/succeeded"] == "1"
    assert run.tags["exosphere/routed"] == "2"
    records = sqlite_instance.all_logs(result.run_id)
    messages = [r.user_message or "" for r in records]

    # every spilled line reached the event log, from both satellites, scrubbed
    for who, items in (("source", 3), ("echo", 2)):
        for label in spilled("x" * 8):
            lines = [m for m in messages if f"] {who} {label}: " in m]
            assert len(lines) == items * len(values), (who, label, lines[:2])
            assert [line for line in lines if "***" not in line] == []
    routed = [m.partition("] routed: ")[2] for m in messages if "] routed: " in m]
    (source_error,) = [e for e in routed if e.startswith("RuntimeError: upstream rejected {")]
    (echo_error,) = [e for e in routed if e.startswith("ValueError: cannot use {'name': ")]
    assert source_error.count("***") == 6  # three in the list, three in the JSON body
    assert echo_error.count("***") == 3

    # B's lines were logged by another process than A's: it redacted what it never resolved
    step_pids = {
        r.step_key: r.dagster_event.pid
        for r in records
        if r.dagster_event and r.dagster_event_type == DagsterEventType.STEP_START
    }
    pids = {
        who: {step_pids[r.step_key] for r in records if f"] {who} json: " in r.user_message}
        for who in ("source", "echo")
    }
    assert pids["source"] and pids["echo"] and not pids["source"] & pids["echo"]
    assert os.getpid() not in pids["source"] | pids["echo"]

    # the event log holds no form of any secret
    needles = _needles(values)
    for record in records:
        text = (record.user_message or "").encode()
        assert not any(n in text for n in needles), record.user_message
        serialized = serialize_value(record).encode()
        assert not any(n in serialized for n in needles), record.user_message
    failures = [r for r in records if r.dagster_event_type == DagsterEventType.STEP_FAILURE]
    assert failures == []

    # no file under DAGSTER_HOME holds one, but those that hold the outputs themselves
    files = [p for p in sorted(dagster_home.rglob("*")) if p.is_file()]
    compute_logs = [p for p in files if "compute_logs" in p.parts]
    assert any(b"source stdout json: " in p.read_bytes() for p in compute_logs)
    assert any(b"echo stderr plain: ***" in p.read_bytes() for p in compute_logs)
    assert any(b"echo stdlib json: " in p.read_bytes() for p in compute_logs)
    leaking = [p.relative_to(dagster_home) for p in files if _hits(p, needles)]
    outputs = [p for p in leaking if p.suffix == ".ckpt" or p.parts[0] == "storage"]
    assert leaking == outputs, "only step outputs and checkpoints may hold a returned secret"
    assert outputs, "leak-source returned the secrets: their outputs must hold them"

    # nor what the log sink received
    forwarded = [json.loads(line) for line in (path.parent / "sink" / "sink.jsonl").open()]
    assert sum("] echo json: " in r["message"] for r in forwarded) == 2 * len(values)
    assert not _hits(path.parent / "sink" / "sink.jsonl", needles)

    captured = capfd.readouterr()
    for stream in (captured.out, captured.err):
        assert not any(n in stream.encode() for n in needles)
    assert "echo json: " in captured.err  # the console logger wrote the scrubbed lines


def test_a_cut_lineage_leaks_no_part_of_a_secret(tmp_path, monkeypatch, sqlite_instance):
    """Every 10-hex-digit chunk of these secrets is a needle: text cut in the middle of a secret
    must have been redacted before it was cut. In-process: the cut is no multiprocess matter."""
    chunks = [random_secrets.token_hex(5) for _ in range(12)]
    values = {
        "QUOTES": "{}'{}\"{}\\{} \u00e9 {}".format(*chunks[:5]),
        "APOSTROPHE": "{}'{} {}\\{}".format(*chunks[5:9]),
        "BASIC": "{}:{}/{}".format(*chunks[9:]),
    }
    path = _write_cluster(tmp_path, monkeypatch, values)

    result = run_cluster_file(path, [{"name": "echo-bad"}], instance=sqlite_instance)

    assert result.success
    messages = [r.user_message or "" for r in sqlite_instance.all_logs(result.run_id)]
    assert any("lineage: " in m and "***" in m for m in messages)
    leaked = [m for m in messages if any(chunk in m for chunk in chunks)]
    assert leaked == []


def test_an_item_named_after_a_secret_keeps_it_out_of_its_id(
    tmp_path, monkeypatch, sqlite_instance
):
    chunks = [random_secrets.token_hex(5) for _ in range(3)]
    values = {
        "QUOTES": f"q'u\"o\\te {chunks[0]}",
        "APOSTROPHE": f"it's {chunks[1]}",
        "BASIC": f"svc:pw/{chunks[2]}",
    }
    path = _write_cluster(tmp_path, monkeypatch, values)

    result = run_cluster_file(
        path, [{"name": "x", "token_as_name": True}], instance=sqlite_instance
    )

    assert result.success
    records = sqlite_instance.all_logs(result.run_id)
    assert any("items_out" in serialize_value(r) for r in records)  # the metadata is searched
    leaked = [r for r in records if any(c in serialize_value(r) for c in chunks)]
    assert leaked == []

"""runtime/secrets.py: each kind of secret reference, its errors, and redaction."""

from __future__ import annotations

import json
import logging
import sys
import uuid

import boto3
import pytest

from exosphere_dagster.runtime.secrets import (
    REDACTED,
    RedactingFilter,
    SecretResolutionError,
    redact,
    redacted_output,
    resolve_secrets,
)


def _unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def _var() -> str:
    return f"E2E_REF_{uuid.uuid4().hex[:8].upper()}"


def test_env_reference(monkeypatch):
    var, value = _var(), _unique("env")
    monkeypatch.setenv(var, value)
    assert resolve_secrets({"TOKEN": f"env:{var}"}, ["TOKEN"]) == {"TOKEN": value}


def test_missing_env_variable_is_named_in_a_clear_error(monkeypatch):
    var, other = _var(), _unique("other")
    monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("E2E_REF_OTHER", other)
    declared = {"TOKEN": f"env:{var}", "OTHER": "env:E2E_REF_OTHER"}
    with pytest.raises(SecretResolutionError) as caught:
        resolve_secrets(declared, ["OTHER", "TOKEN"])
    message = str(caught.value)
    assert message.startswith(f"secret 'TOKEN': environment variable {var} is not set")
    assert f"export {var}=" in message
    assert other not in message


def test_only_named_secrets_are_resolved(monkeypatch):
    var, value = _var(), _unique("named")
    monkeypatch.setenv(var, value)
    declared = {"USED": f"env:{var}", "BROKEN": "env:E2E_REF_NOT_SET_ANYWHERE", "LIT": "x" * 8}
    monkeypatch.delenv("E2E_REF_NOT_SET_ANYWHERE", raising=False)
    assert resolve_secrets(declared, ["USED"]) == {"USED": value}
    assert resolve_secrets(declared, []) == {}


@pytest.mark.parametrize("style", ["file:", ""])
def test_file_reference(tmp_path, style):
    value = _unique("file")
    path = tmp_path / "token"
    path.write_text(value + "\n")  # Kubernetes secret files often end in a newline
    assert resolve_secrets({"K8S": f"{style}{path}"}, ["K8S"]) == {"K8S": value}


def test_missing_file_error_names_the_path(tmp_path):
    path = tmp_path / "not-mounted"
    with pytest.raises(SecretResolutionError) as caught:
        resolve_secrets({"K8S": f"file:{path}"}, ["K8S"])
    message = str(caught.value)
    assert message.startswith(f"secret 'K8S': cannot read {path}: No such file or directory")
    assert "mount the Kubernetes secret" in message


def test_literal_is_taken_as_is():
    value = _unique("literal")
    assert resolve_secrets({"LIT": value}, ["LIT"]) == {"LIT": value}


@pytest.fixture
def secretsmanager(moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return boto3.client("secretsmanager", endpoint_url=moto_server, region_name="us-east-1")


def test_aws_secrets_manager_plain_and_json_key(secretsmanager):
    plain, name = _unique("plain"), _unique("e2e/plain")
    secretsmanager.create_secret(Name=name, SecretString=plain)
    password = _unique("pw")
    json_name = _unique("e2e/json")
    secretsmanager.create_secret(
        Name=json_name, SecretString=json.dumps({"username": "svc", "password": password})
    )
    declared = {
        "PLAIN": f"aws-secretsmanager:{name}",
        "PASSWORD": f"aws-secretsmanager:{json_name}#password",
        "WHOLE": f"aws-secretsmanager:{json_name}",
    }
    resolved = resolve_secrets(declared, declared)
    assert resolved["PLAIN"] == plain
    assert resolved["PASSWORD"] == password
    assert json.loads(resolved["WHOLE"]) == {"username": "svc", "password": password}


def test_aws_secrets_manager_errors_name_the_secret_not_its_value(secretsmanager):
    password = _unique("pw")
    name = _unique("e2e/creds")
    secretsmanager.create_secret(Name=name, SecretString=json.dumps({"password": password}))
    with pytest.raises(SecretResolutionError) as caught:
        resolve_secrets({"DB": f"aws-secretsmanager:{name}#user"}, ["DB"])
    assert str(caught.value) == f"secret 'DB': {name} has no JSON key 'user'"
    missing = _unique("e2e/missing")
    with pytest.raises(SecretResolutionError) as caught:
        resolve_secrets({"DB": f"aws-secretsmanager:{missing}"}, ["DB"])
    assert str(caught.value) == (
        f"secret 'DB': AWS Secrets Manager {missing}: ResourceNotFoundException"
    )
    not_json = _unique("e2e/text")
    secretsmanager.create_secret(Name=not_json, SecretString=password)
    with pytest.raises(SecretResolutionError) as caught:
        resolve_secrets({"DB": f"aws-secretsmanager:{not_json}#password"}, ["DB"])
    assert password not in str(caught.value)


def test_redact_scrubs_every_resolved_value(monkeypatch):
    var, value = _var(), _unique("redact")
    monkeypatch.setenv(var, value)
    resolve_secrets({"T": f"env:{var}"}, ["T"])
    assert redact(f"bearer {value}; again {value}") == f"bearer {REDACTED}; again {REDACTED}"
    assert redact("nothing secret here") == "nothing secret here"
    extra = _unique("extra")
    assert redact(f"{extra} and {value}", [extra]) == f"{REDACTED} and {REDACTED}"
    assert redact(extra) == extra  # extra values are not remembered


def test_redact_prefers_the_longest_value_and_skips_tiny_ones():
    short = _unique("ab")
    long = short + "-suffix"
    assert redact(f"<{long}>", [short, long]) == f"<{REDACTED}>"
    assert redact("a-b-c", ["b", "-c"]) == "a-b-c"  # under 4 characters: too common to scrub
    assert redact("x", [""]) == "x"


def test_short_resolved_values_are_not_remembered(monkeypatch):
    var = _var()
    monkeypatch.setenv(var, "on")
    assert resolve_secrets({"FLAG": f"env:{var}"}, ["FLAG"]) == {"FLAG": "on"}
    assert redact("turned on") == "turned on"


def test_redacting_filter_scrubs_messages_with_args(monkeypatch, caplog):
    var, value = _var(), _unique("filtered")
    monkeypatch.setenv(var, value)
    resolve_secrets({"T": f"env:{var}"}, ["T"])
    log = logging.getLogger("e2e.redacting-filter")
    log.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="e2e.redacting-filter"):
            log.info("token %s for %s", value, "svc")
            log.info("plain message")
    finally:
        log.filters.clear()
    assert [r.getMessage() for r in caplog.records] == [
        f"token {REDACTED} for svc",
        "plain message",
    ]


def test_redacted_output_scrubs_prints_and_restores_streams(monkeypatch, capsys):
    var, value = _var(), _unique("printed")
    monkeypatch.setenv(var, value)
    resolve_secrets({"T": f"env:{var}"}, ["T"])
    before = sys.stdout, sys.stderr
    with redacted_output():
        with redacted_output():  # nested (concurrent steps in one process) is fine
            print(f"token {value}")
        print("err", value, file=sys.stderr)
    assert (sys.stdout, sys.stderr) == before
    print(f"after {value}")  # outside satellite code nothing is wrapped
    captured = capsys.readouterr()
    assert captured.out == f"token {REDACTED}\nafter {value}\n"
    assert captured.err == f"err {REDACTED}\n"

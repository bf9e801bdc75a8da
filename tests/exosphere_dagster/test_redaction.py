"""runtime/secrets.py redaction: every form a value is written in, the length floor, stdlib log
records whatever their handler, and the per-process cache of AWS Secrets Manager answers (moto).
The multiprocess end-to-end case is tests/e2e/test_secrets_forms.py."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import secrets as random_secrets
import uuid
from urllib.parse import quote, urlencode

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exosphere_dagster.runtime import secrets as secrets_module
from exosphere_dagster.runtime.secret_forms import _trie_regex, forms_pattern
from exosphere_dagster.runtime.secrets import (
    REDACTED,
    SecretResolutionError,
    redact,
    redaction_values,
    resolve_secrets,
)


def _tricky() -> list[str]:
    core = random_secrets.token_hex(10)
    return [
        f"q'u\"o\\te d\u00e9j\u00e0 {core}",  # both quotes, a backslash, accents, spaces
        f"it's a\\path \u00fcber {core}",  # no double quote: repr picks double quotes
        f"tab\there\nline {core}",  # control characters
        f"emoji \U0001f600 {core}",  # outside the BMP: JSON writes a surrogate pair
        f"svc:p@ss w0rd/{core}",  # URL-reserved characters, a Basic auth pair
    ]


def _written(value: str) -> dict[str, str]:
    """How software writes strings: what a satellite logs, raises or prints."""
    body = json.dumps({"token": value})
    return {
        "plain": f"token {value}!",
        "repr-dict": repr({"token": value}),
        "repr-list": repr([value, "x"]),
        "repr-in-double-quotes": repr(f'say "{value}"'),
        "ascii": ascii({"token": value}),
        "bytes": repr(value.encode()),
        "json": body,
        "json-utf8": json.dumps({"token": value}, ensure_ascii=False),
        "json-in-repr": f"bad response {body!r}",
        "repr-in-json": json.dumps({"error": repr({"token": value})}),
        "exception-repr": repr(RuntimeError(f"rejected {value!r}")),
        "query": "https://h/?" + urlencode({"token": value}),
        "path": "https://h/" + quote(value, safe=""),
        "basic": "Authorization: Basic " + base64.b64encode(value.encode()).decode(),
        "basic-urlsafe": "k=" + base64.urlsafe_b64encode(value.encode()).decode().rstrip("="),
    }


@pytest.mark.parametrize("index", range(5))
def test_every_written_form_is_redacted(index):
    value = _tricky()[index]
    core = value.rsplit(" ", 1)[-1].rsplit("/", 1)[-1]
    encoded = base64.b64encode(value.encode()).decode().rstrip("=")
    for how, text in _written(value).items():
        clean = redact(text, [value])
        assert REDACTED in clean, how
        assert core not in clean and encoded[:12] not in clean, (how, clean)


def test_the_longest_form_wins_so_nothing_of_the_value_is_left():
    value = f'ab"cd\\{uuid.uuid4().hex}'
    for text in (json.dumps(value), repr(value), json.dumps(json.dumps(value))):
        assert redact(text, [value]) in {f'"{REDACTED}"', f"'{REDACTED}'", f'"\\"{REDACTED}\\""'}


def test_values_shorter_than_four_characters_are_not_redacted():
    assert redact("say 'it\\'s' or \"abc\"", ["abc", "it's"]) == f"say '{REDACTED}' or \"abc\""
    assert redact(json.dumps("on"), ["on"]) == '"on"'


def test_redaction_values_skips_what_cannot_be_resolved(monkeypatch, tmp_path):
    var = f"E2E_RED_{uuid.uuid4().hex[:8].upper()}"
    value = f"env-{uuid.uuid4().hex}"
    monkeypatch.setenv(var, value)
    literal = f"literal-{uuid.uuid4().hex}"
    declared = {
        "ENV": f"env:{var}",
        "UNSET": f"env:{var}_NOT_SET",
        "UNMOUNTED": f"file:{tmp_path / 'missing'}",
        "LIT": literal,
    }
    assert sorted(redaction_values(declared)) == sorted([value, literal])
    # remembered: later text is scrubbed without being told the values again
    assert redact(repr({"a": value, "b": literal})) == f"{{'a': '{REDACTED}', 'b': '{REDACTED}'}}"


def test_stdlib_log_records_are_scrubbed_whatever_their_handler(monkeypatch):
    """A handler made before any secret was known, writing to its own stream: the records are
    scrubbed when created (message, traceback, stack), not by the handler."""
    buffer = io.StringIO()
    log = logging.getLogger(f"e2e.redaction.{uuid.uuid4().hex}")
    log.addHandler(logging.StreamHandler(buffer))
    log.propagate = False
    var = f"E2E_RED_{uuid.uuid4().hex[:8].upper()}"
    value = f"it's-{uuid.uuid4().hex}"
    monkeypatch.setenv(var, value)
    resolve_secrets({"T": f"env:{var}"}, ["T"])
    log.warning("body %s", json.dumps({"token": value}))
    try:
        raise RuntimeError(f"rejected {value!r}")
    except RuntimeError:
        log.exception("call failed for %r", {"token": value})
    log.warning("here %s", value, stack_info=True)
    written = buffer.getvalue()
    assert value.split("-")[1] not in written
    assert '{"token": "***"}' in written
    assert "call failed for {'token': \"***\"}" in written
    assert 'RuntimeError: rejected "***"' in written  # repr chose double quotes for it's-
    assert "Stack (most recent call last)" in written


@pytest.fixture
def secretsmanager_calls(moto_server, monkeypatch):
    """SecretIds of the GetSecretValue calls the code under test makes (a botocore hook on the
    default session, which ``boto3.client`` uses)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    boto3.setup_default_session()
    calls: list[str] = []
    boto3.DEFAULT_SESSION.events.register(
        "before-parameter-build.secrets-manager.GetSecretValue",
        lambda params, **_: calls.append(params["SecretId"]),
    )
    yield calls
    boto3.DEFAULT_SESSION = None


def test_secrets_manager_is_asked_once_per_process_and_period(secretsmanager_calls):
    client = boto3.client("secretsmanager")
    name = f"e2e/red-{uuid.uuid4().hex}"
    client.create_secret(Name=name, SecretString="first-value")
    declared = {"TOKEN": f"aws-secretsmanager:{name}"}
    for _ in range(3):  # three steps of a run in one process
        assert redaction_values(declared) == ("first-value",)
    assert resolve_secrets(declared, ["TOKEN"]) == {"TOKEN": "first-value"}
    client.put_secret_value(SecretId=name, SecretString="second-value")
    assert resolve_secrets(declared, ["TOKEN"]) == {"TOKEN": "first-value"}  # still cached
    assert secretsmanager_calls == [name]


def test_secrets_manager_answers_expire(secretsmanager_calls, monkeypatch):
    monkeypatch.setattr(secrets_module, "CACHE_SECONDS", 0.0)
    client = boto3.client("secretsmanager")
    name = f"e2e/red-{uuid.uuid4().hex}"
    client.create_secret(Name=name, SecretString="first-value")
    declared = {"TOKEN": f"aws-secretsmanager:{name}"}
    assert redaction_values(declared) == ("first-value",)
    client.put_secret_value(SecretId=name, SecretString="rotated-value")
    assert redaction_values(declared) == ("rotated-value",)
    assert secretsmanager_calls == [name, name]


def test_a_failing_secret_costs_redaction_one_call_but_satellites_ask_again(
    secretsmanager_calls,
):
    missing = f"e2e/red-missing-{uuid.uuid4().hex}"
    declared = {"GONE": f"aws-secretsmanager:{missing}"}
    for _ in range(3):
        assert redaction_values(declared) == ()  # skipped, not an error
    assert secretsmanager_calls == [missing]
    for _ in range(2):
        with pytest.raises(SecretResolutionError, match="ResourceNotFoundException"):
            resolve_secrets(declared, ["GONE"])
    assert secretsmanager_calls == [missing] * 3


def _longest_first_reference(text: str, words: set[str]) -> str:
    """Left to right, replace the longest word starting at each position (the spec)."""
    out, i = [], 0
    while i < len(text):
        found = max((w for w in words if text.startswith(w, i)), key=len, default=None)
        if found:
            out.append(REDACTED)
            i += len(found)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(
    words=st.sets(st.text(alphabet="ab\\'\"", min_size=1, max_size=6), min_size=1, max_size=8),
    text=st.text(alphabet="ab\\'\"x", max_size=40),
)
def test_the_form_pattern_replaces_the_longest_form_at_each_position(words, text):
    pattern = re.compile(_trie_regex(words))
    assert pattern.sub(REDACTED, text) == _longest_first_reference(text, words)


def test_a_long_secret_full_of_escapes_compiles_and_is_redacted():
    """A PEM key or a service-account JSON: thousands of characters, hundreds of escapes."""
    body = "\n".join(random_secrets.token_urlsafe(48) for _ in range(40))
    key = f'-----BEGIN KEY-----\n{body}\n-----END KEY-----\n{{"k": "it\'s \\\\"}}'
    pattern = forms_pattern(frozenset([key]))
    assert pattern is not None
    for text in (key, repr({"key": key}), json.dumps({"key": key}), repr(json.dumps(key))):
        assert pattern.sub(REDACTED, text).count(REDACTED) == 1

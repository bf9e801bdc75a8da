"""Resolve secret references in the step process, and scrub their values from any text.

Redaction covers each value in every form software commonly writes it in (runtime/
secret_forms.py): quoted by ``repr`` or JSON, URL-encoded, base64. What is and is not covered is
spelled out for users in docs/runtime.md ("Secrets and redaction").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from exosphere_dagster.runtime.secret_forms import forms_pattern
from yaml_loader.secret_refs import parse_secret_ref

logger = logging.getLogger(__name__)
REDACTED = "***"
MIN_LENGTH = 4  # shorter values ("on", "1") are too common in text to scrub
CACHE_SECONDS = 60.0  # how long a process reuses an answer of AWS Secrets Manager
_lock = threading.Lock()
_known: frozenset[str] = frozenset()  # every value resolved in this process, for redaction
_answers: dict[tuple[str, str], tuple[float, str | SecretResolutionError]] = {}


class SecretResolutionError(Exception):
    """A secret could not be resolved; the message never contains a secret value."""


def resolve_secrets(declared: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """Resolve only ``names`` (those a satellite's templates read) from their declarations."""
    resolved = {name: _resolve(name, declared[name]) for name in sorted(names)}
    _remember(resolved.values())
    return resolved


def redaction_values(declared: Mapping[str, str]) -> tuple[str, ...]:
    """Every declared secret this process can resolve, for redaction in any step (a step must
    scrub secrets that other steps resolved and satellites passed along). Unresolvable ones are
    skipped: a value nobody here can read cannot leak from here."""
    values = []
    for name, declaration in declared.items():
        try:
            values.append(_resolve(name, declaration, reuse_failure=True))
        except SecretResolutionError:
            continue
    _remember(values)
    return tuple(values)


def _remember(values: Iterable[str]) -> None:
    global _known
    with _lock:
        new = {v for v in values if len(v) >= MIN_LENGTH} - _known
        if not new:
            return
        _known = _known | new
    _scrub_log_records()


def _resolve(name: str, declaration: str, *, reuse_failure: bool = False) -> str:
    ref = parse_secret_ref(declaration)
    if ref.kind == "literal":
        return ref.target
    if ref.kind == "env":
        value = os.environ.get(ref.target)
        if value is None:
            raise SecretResolutionError(
                f"secret '{name}': environment variable {ref.target} is not set "
                f"(set it in the code location's environment, e.g. export {ref.target}=...)"
            )
        return value
    if ref.kind == "file":
        try:
            return Path(ref.target).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretResolutionError(
                f"secret '{name}': cannot read {ref.target}: {exc.strerror} "
                "(mount the Kubernetes secret at that path)"
            ) from None
    return _cached_secrets_manager(name, declaration, reuse_failure)


def _cached_secrets_manager(name: str, declaration: str, reuse_failure: bool) -> str:
    """At most one Secrets Manager call per secret and process every CACHE_SECONDS: every step
    resolves every declared secret for redaction, and one process may run many steps. A
    failure is reused only for redaction (a satellite that needs the secret asks again)."""
    now = time.monotonic()
    with _lock:
        expires, answer = _answers.get((name, declaration), (0.0, ""))
    if now >= expires or (isinstance(answer, SecretResolutionError) and not reuse_failure):
        ref = parse_secret_ref(declaration)
        try:
            answer = _from_secrets_manager(name, ref.target, ref.key)
        except SecretResolutionError as exc:
            answer = exc
        with _lock:
            _answers[(name, declaration)] = (now + CACHE_SECONDS, answer)
    if isinstance(answer, SecretResolutionError):
        raise SecretResolutionError(*answer.args)
    return answer


def _from_secrets_manager(name: str, secret_id: str, key: str | None) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except (BotoCoreError, ClientError) as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise SecretResolutionError(
            f"secret '{name}': AWS Secrets Manager {secret_id}: {code}"
        ) from None
    value = response.get("SecretString") or response.get("SecretBinary", b"").decode()
    if key is None:
        return value
    try:
        return str(json.loads(value)[key])
    except (ValueError, KeyError, TypeError):
        raise SecretResolutionError(
            f"secret '{name}': {secret_id} has no JSON key '{key}'"
        ) from None


# -- redaction ----------------------------------------------------------------------------------
def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Replace every form of every secret value this process has resolved (and ``extra``,
    which is not remembered) with ***."""
    values = _known
    more = {v for v in extra if len(v) >= MIN_LENGTH} - values
    pattern = forms_pattern(values | more if more else values)
    return pattern.sub(REDACTED, text) if pattern is not None else text


class _RedactingStream:
    """A text stream that scrubs secret values from what is written through it."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redact(text) if isinstance(text, str) else text)  # type: ignore[attr-defined]
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


_streams_lock = threading.Lock()
_streams_users = [0]


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """Scrub secret values from ``sys.stdout``/``sys.stderr`` while satellites run, so a
    satellite that prints a secret does not put it in the step's compute logs (shown in the
    UI). Each write is scrubbed on its own; writes straight to the file descriptors
    (subprocesses, C code) and to ``sys.stdout.buffer`` are not covered."""
    with _streams_lock:
        if _streams_users[0] == 0:
            for name in ("stdout", "stderr"):
                stream = getattr(sys, name)
                if stream is not None and not isinstance(stream, _RedactingStream):
                    setattr(sys, name, _RedactingStream(stream))
        _streams_users[0] += 1
    try:
        yield
    finally:
        with _streams_lock:
            _streams_users[0] -= 1
            if _streams_users[0] == 0:
                for name in ("stdout", "stderr"):
                    stream = getattr(sys, name)
                    if isinstance(stream, _RedactingStream):
                        setattr(sys, name, stream._inner)


def scrub_record(record: logging.LogRecord) -> None:
    """Redact a log record's message, traceback text and stack in place."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is reported by logging when emitted
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        trace = _FORMATTER.formatException(record.exc_info)
        if (clean := redact(trace)) != trace:
            record.exc_text = clean  # formatters print exc_text instead of re-formatting
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs secret values from every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


def _scrub_log_records() -> None:
    """Once a process knows a secret, every log record it creates is scrubbed at birth, so
    the stdlib loggers of satellites and libraries (and Dagster's managed loggers, which copy
    them to the event log) never carry one, whatever their handlers."""
    with _lock:
        previous = logging.getLogRecordFactory()
        if getattr(previous, "redacts_secrets", False):
            return

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            scrub_record(record)
            return record

        factory.redacts_secrets = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)

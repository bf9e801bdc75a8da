"""Resolve secret references in the step process, and scrub their values from any text."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from yaml_loader.secret_refs import parse_secret_ref

logger = logging.getLogger(__name__)
REDACTED = "***"
_lock = threading.Lock()
_known_values: set[str] = set()  # every value resolved in this process, for redaction


class SecretResolutionError(Exception):
    """A secret could not be resolved; the message never contains a secret value."""


def resolve_secrets(declared: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """Resolve only ``names`` (those a satellite's templates read) from their declarations."""
    resolved = {name: _resolve(name, declared[name]) for name in sorted(names)}
    with _lock:
        _known_values.update(v for v in resolved.values() if len(v) >= 4)
    return resolved


def redaction_values(declared: Mapping[str, str]) -> tuple[str, ...]:
    """Every declared secret this process can resolve, for redaction in any step (a step must
    scrub secrets that other steps resolved and satellites passed along). Unresolvable ones are
    skipped: a value nobody can read cannot leak."""
    values = []
    for name, declaration in declared.items():
        try:
            values.append(_resolve(name, declaration))
        except SecretResolutionError:
            continue
    with _lock:
        _known_values.update(v for v in values if len(v) >= 4)
    return tuple(values)


def _resolve(name: str, declaration: str) -> str:
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
    return _from_secrets_manager(name, ref.target, ref.key)


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


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Replace every secret value this process has resolved (and ``extra``) with ***."""
    with _lock:
        values = sorted(
            {*_known_values, *(v for v in extra if v and len(v) >= 4)}, key=len, reverse=True
        )
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


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
    UI). Writes straight to the file descriptors (subprocesses) are not covered."""
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


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs secret values from every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True

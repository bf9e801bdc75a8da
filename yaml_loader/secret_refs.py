"""How a secret's value is written in a cluster file (the resolving happens at run time)."""

from __future__ import annotations

from dataclasses import dataclass

REFERENCE_SCHEMES = ("env:", "aws-secretsmanager:", "file:")


@dataclass(frozen=True)
class SecretRef:
    kind: str  # "env", "aws-secretsmanager", "file" or "literal"
    target: str  # variable name, secret id, path, or the literal value itself
    key: str | None = None  # JSON key inside an aws-secretsmanager secret (``id#key``)


def parse_secret_ref(value: str) -> SecretRef:
    if value.startswith("env:"):
        return SecretRef("env", value[4:])
    if value.startswith("aws-secretsmanager:"):
        target, _, key = value[len("aws-secretsmanager:") :].partition("#")
        return SecretRef("aws-secretsmanager", target, key or None)
    if value.startswith("file:"):
        return SecretRef("file", value[5:])
    if value.startswith("/"):
        return SecretRef("file", value)
    return SecretRef("literal", value)


def is_reference(value: str) -> bool:
    return parse_secret_ref(value).kind != "literal"

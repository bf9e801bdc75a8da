"""What a run's launcher may change in a satellite's config, and what the cluster file fixes.

A satellite whose config holds a secret acts with the cluster's credentials. Whoever may launch
a run (the Launchpad, GraphQL ``launchRun``, ``exosphere clusters run``) edits op config, and
must not turn those credentials elsewhere. In such a model two kinds of fields are fixed:

- destinations, where the secret is sent (``url``, ``endpoint``, ``base-url``, ``host``,
  ``region``...), found by name: never editable at launch, not even shown;
- targets, what the credentials act on (a bucket, an object key, a prefix, a table, a service
  id), declared on the model with :data:`FIXED_AT_LAUNCH`::

      bucket: Annotated[str, FIXED_AT_LAUNCH] = Field(description="Bucket to delete from.")

  shown in the Launchpad with the file's value; a run that changes one is refused before any
  satellite runs, unless the satellite's entry in the cluster file lists the key under
  ``launch-editable:``.

Fields of a model without a secret are all editable. Secrets are never part of run config.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

_SECRET_TYPES = (SecretStr, SecretBytes, Secret)
DESTINATION = re.compile(
    r"(^|_)(url|uri|endpoint|endpoint_url|base_url|host|hostname|region|verify_tls)$"
)
OPT_IN_KEY = "launch-editable"


@dataclass(frozen=True)
class FixedAtLaunch:
    """Field metadata: the field names what a satellite's credentials act on (see the module)."""


FIXED_AT_LAUNCH = FixedAtLaunch()


@dataclass(frozen=True)
class LaunchFields:
    """A config model's fields as run config sees them: config key (the alias cluster files
    spell) -> field name. ``fixed`` fields are shown but a launch keeps the file's value."""

    editable: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)


def launch_fields(model: type[BaseModel], opted_in: Collection[str] = ()) -> LaunchFields:
    """``model``'s fields for run config; ``opted_in``: the keys the cluster file lists under
    ``launch-editable`` (a field's alias or name), which makes a target editable again."""
    fields = model.model_fields
    guarded = any(holds_secret(info.annotation) for info in fields.values())
    result = LaunchFields()
    for name, info in fields.items():
        key = info.alias or name
        if holds_secret(info.annotation) or (guarded and DESTINATION.search(name)):
            continue
        target = guarded and any(isinstance(m, FixedAtLaunch) for m in info.metadata)
        if target and key not in opted_in and name not in opted_in:
            result.fixed[key] = name
        else:
            result.editable[key] = name
    return result


def holds_secret(annotation: Any, seen: frozenset[type] = frozenset()) -> bool:
    """True when a field of this type holds a secret anywhere inside (a nested model's too)."""
    origin = typing.get_origin(annotation) or annotation  # Secret[int] is an alias, not a class
    if isinstance(origin, type) and issubclass(origin, _SECRET_TYPES):
        return True
    if (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and annotation not in seen
    ):
        inner = seen | {annotation}
        return any(holds_secret(f.annotation, inner) for f in annotation.model_fields.values())
    return any(holds_secret(arg, seen) for arg in typing.get_args(annotation))


def fixed_field_problem(key: str, satellite: str) -> tuple[str, str]:
    """The refusal of an edit to a fixed field: (message, fix)."""
    return (
        f"'{key}' is fixed by the cluster file: it names what {satellite}'s credentials act on, "
        "and a launch may not change it",
        f"launch with the file's value, or list it in the cluster file under this satellite's "
        f"`{OPT_IN_KEY}: [{key}]` to let launches change it",
    )

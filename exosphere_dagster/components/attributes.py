"""What a cluster component's ``attributes:`` hold, its JSON Schema for ``dg check yaml``, and the
inline cluster read back from ``defs.yaml`` with our own loader.

Dagster validates ``attributes`` with the model ``get_model_cls`` returns and ``dg check yaml``
checks them against that model's JSON Schema. The models here accept any cluster mapping (our
loader decides, with its own scalar rules and located errors) and publish the cluster format's
schema (``entry.schema``, the one ``exosphere schema`` prints), so ``dg check yaml`` reports a
bad value at its line in ``defs.yaml``. Templates, references and secrets need the whole
cluster: they are checked when the component loads (``dg check defs``)."""

from __future__ import annotations

import copy
import dataclasses
import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from exosphere_dagster.entry.schema import cluster_json_schema
from exosphere_dagster.resolve.catalog import registry_with_plugins
from yaml_loader import ConfigError, ConfigErrors, LoadedCluster, load_text

FILE_DESCRIPTION = (
    "A cluster file beside defs.yaml (.yml, .yaml, or a .py file that builds clusters), "
    "relative to the defs.yaml folder. Leave it out to write the cluster inline: "
    "'version' and 'cluster' as in a cluster file."
)


@functools.cache
def _cluster_schema() -> dict[str, Any]:
    return cluster_json_schema(registry_with_plugins())


class ClusterAttributes(BaseModel):
    """``attributes:`` of ``exosphere_dagster.ClusterComponent``: ``file`` or an inline cluster."""

    model_config = ConfigDict(extra="forbid")
    file: str | None = Field(None, description=FILE_DESCRIPTION)
    version: Any = None
    cluster: Any = None

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        schema = copy.deepcopy(_cluster_schema())
        schema.pop("required", None)
        schema["title"] = "exosphere cluster component"
        schema["properties"]["file"] = {
            "type": "string",
            "minLength": 1,
            "description": FILE_DESCRIPTION,
        }
        schema["if"] = {"required": ["file"]}
        schema["then"] = {
            "not": {"anyOf": [{"required": ["version"]}, {"required": ["cluster"]}]},
            "description": "'file' or an inline cluster, not both",
        }
        schema["else"] = {"required": ["version", "cluster"]}
        return schema


class FolderAttributes(BaseModel):
    """``attributes:`` of ``exosphere_dagster.ClusterFolderComponent``."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(
        description="A folder of cluster files, relative to the defs.yaml folder (or absolute), "
        "or an s3://bucket/prefix. Each file is its own cluster; a broken file becomes an "
        "invalid__<file> job that shows its errors."
    )


def attributes_text(file: str, key_line: int) -> str:
    """``defs.yaml``'s text with everything but the value of the ``attributes`` key written at
    ``key_line`` (1-based) blanked out: the text parses as that value alone while every line and
    column stays where it is in the file."""
    text = Path(file).read_text(encoding="utf-8")
    value = next(
        (
            value
            for document in yaml.compose_all(text, Loader=yaml.SafeLoader)
            if isinstance(document, yaml.MappingNode)
            for key, value in document.value
            if key.value == "attributes" and key.start_mark.line + 1 == key_line
        ),
        None,
    )
    if value is None:
        return ""
    start, end = value.start_mark, value.end_mark
    lines = text.split("\n")
    kept = []
    for number, line in enumerate(lines):
        first = start.column if number == start.line else 0
        last = end.column if number == end.line else len(line)
        if not start.line <= number <= end.line:
            first = last = 0
        kept.append(" " * first + line[first:last] + " " * max(len(line) - last, 0))
    return "\n".join(kept)


def load_inline(file: str, key_line: int) -> LoadedCluster:
    """The cluster written under ``attributes:`` (at ``key_line``) in ``file``, every error
    located in it. Read from ``defs.yaml``'s text, not from the attributes Dagster already
    parsed: the loader's scalar rules (quoted or plain, no YAML 1.1 ``on``/dates) and every
    line:col come from the YAML nodes' styles and marks, which parsed data no longer has."""
    try:
        return load_text(attributes_text(file, key_line), file)
    except ConfigErrors as exc:
        raise ConfigErrors([under_attributes(e) for e in exc.errors]) from None


def under_attributes(error: ConfigError) -> ConfigError:
    """An error's key path as ``defs.yaml`` spells it (``attributes.cluster.sla``)."""
    return dataclasses.replace(error, key_path=("attributes", *error.key_path))

"""JSON Schema of the cluster format, with each satellite's ``config`` schema attached to its
``uses`` value, so yaml-language-server can complete and check config keys in editors."""

from __future__ import annotations

from typing import Any

from satellite_ops.registry import SatelliteRegistry
from yaml_loader.models import ClusterFile

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def cluster_json_schema(registry: SatelliteRegistry) -> dict[str, Any]:
    schema = ClusterFile.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    rules = []
    for identifier in registry.identifiers():
        definition = registry.get(identifier)
        config_schema = definition.config_model.model_json_schema(by_alias=True)
        defs.update(config_schema.pop("$defs", {}))
        config_schema.setdefault("description", definition.description)
        rules.append(
            {
                "if": {"properties": {"uses": {"const": identifier}}, "required": ["uses"]},
                "then": {"properties": {"config": config_schema}},
            }
        )
    satellite = defs["SatelliteSpec"]
    satellite["properties"]["uses"]["examples"] = registry.identifiers()
    satellite["allOf"] = rules
    _accept_single_key_lists(schema)
    return {"$schema": SCHEMA_DIALECT, "title": "exosphere cluster (version 0.0.1b)", **schema}


SINGLE_KEY_MAP_FIELDS = ("secrets", "headers")
LIST_FORM = {"type": "array", "items": {"type": "object", "minProperties": 1, "maxProperties": 1}}


def _accept_single_key_lists(node: Any) -> None:
    """``secrets``/``headers`` may also be written as a list of one-key maps (the reference
    example's spelling); the models normalise it, the schema must accept it too."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for name in SINGLE_KEY_MAP_FIELDS:
                if name in props and LIST_FORM not in props[name].get("anyOf", []):
                    field = props[name]
                    alternatives = field.pop("anyOf", None) or [dict(field)]
                    kept = {k: field[k] for k in ("description", "default", "title") if k in field}
                    props[name] = {"anyOf": [*alternatives, LIST_FORM], **kept}
        for value in node.values():
            _accept_single_key_lists(value)
    elif isinstance(node, list):
        for value in node:
            _accept_single_key_lists(value)

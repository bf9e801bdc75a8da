"""JSON Schema of what the loader accepts, so yaml-language-server checks files as
``exosphere validate`` does.

The cluster models describe their own fields (``yaml_loader.models``); this module adds what
depends on the registry and on how a satellite's ``config`` is validated at load time:

* ``uses`` names a registered satellite, and ``config`` follows that satellite's model;
* configs are validated in pydantic's lax mode (``"3"`` is an int, ``1`` a bool, ``12`` a str
  under ``coerce_numbers_to_str``): each scalar type is widened the same way;
* every config value may be a template (``${{ ... }}``): it is checked once rendered;
* every level of a config is strict unless its model allows extra keys itself;
* ``normalise_single_key_maps`` fields also take a list of single-key maps.

What a pattern cannot say stays with the loader: cron field ranges, numeric bounds on numbers
written as text, template references, the graph. Run this with the same
``EXOSPHERE_SATELLITE_MODULES`` as ``exosphere validate``: unregistered satellites are refused.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from satellite_ops.config import normalise_single_key_maps
from satellite_ops.registry import SatelliteRegistry
from yaml_loader.models import ClusterFile
from yaml_loader.validation import allows_extra_keys

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TEMPLATE = {"type": "string", "pattern": r"\$\{\{[\s\S]*\}\}", "description": "A template."}
# numbers written as text, as pydantic's lax mode reads them
_INT_TEXT = r"^\s*[+-]?[0-9]+(_[0-9]+)*(\.0*)?\s*$"
_FLOAT_TEXT = r"[+-]?([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9][0-9_]*)([eE][+-]?[0-9]+)?"
_BOOL_WORDS = ("true", "false", "yes", "no", "on", "off", "t", "f", "y", "n", "1", "0")


def cluster_json_schema(registry: SatelliteRegistry) -> dict[str, Any]:
    identifiers = registry.identifiers()
    models = [registry.get(identifier).config_model for identifier in identifiers]
    refs, top = models_json_schema(
        [(ClusterFile, "validation"), *((model, "validation") for model in models)],
        by_alias=True,
        schema_generator=_AsValidated,
    )
    defs = top["$defs"]
    root = defs.pop(_def_name(refs[ClusterFile, "validation"]))
    config_defs = _reachable([refs[model, "validation"] for model in models], defs)
    for name in config_defs:
        _allow_templates(defs[name])
    rules = []
    for identifier, model in zip(identifiers, models, strict=True):
        then: dict[str, Any] = {"properties": {"config": refs[model, "validation"]}}
        if any(field.is_required() for field in model.model_fields.values()):
            then["required"] = ["config"]
        rules.append(
            {
                "if": {"properties": {"uses": {"const": identifier}}, "required": ["uses"]},
                "then": then,
            }
        )
    satellite = defs["SatelliteSpec"]
    uses = satellite["properties"]["uses"]
    uses["enum"] = uses["examples"] = identifiers
    satellite["allOf"] = rules
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "exosphere cluster (version 0.0.1b)",
        **root,
        "$defs": defs,
    }


class _AsValidated(GenerateJsonSchema):
    """Pydantic's JSON Schema, widened or narrowed to what validation really accepts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._models: list[type[BaseModel]] = []

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        self._models.append(schema["cls"])
        try:
            json_schema = super().model_schema(schema)
        finally:
            self._models.pop()
        if not allows_extra_keys(schema["cls"]):  # strict, as the loader validates it
            json_schema["additionalProperties"] = False
        return json_schema

    def _setting(self, schema: Any, name: str, default: Any) -> Any:
        if schema.get(name) is not None:
            return schema[name]
        if self._models:
            return self._models[-1].model_config.get(name, default)
        return default

    def _lax(self, schema: Any) -> bool:
        return not self._setting(schema, "strict", False)

    def int_schema(self, schema: core_schema.IntSchema) -> JsonSchemaValue:
        json_schema = super().int_schema(schema)
        if not self._lax(schema):
            return json_schema
        flags = [flag for flag in (False, True) if _within(int(flag), schema)]
        text = {"type": "string", "pattern": _INT_TEXT}
        return {"anyOf": [json_schema, text, *([{"enum": flags}] if flags else [])]}

    def float_schema(self, schema: core_schema.FloatSchema) -> JsonSchemaValue:
        json_schema = super().float_schema(schema)
        if not self._lax(schema):
            return json_schema
        number = _FLOAT_TEXT
        if self._setting(schema, "allow_inf_nan", True):
            number += r"|[+-]?(" + _any_case("inf", "infinity", "nan") + ")"
        pattern = rf"^\s*({number})\s*$"
        flags = [flag for flag in (False, True) if _within(float(flag), schema)]
        text = {"type": "string", "pattern": pattern}
        return {"anyOf": [json_schema, text, *([{"enum": flags}] if flags else [])]}

    def bool_schema(self, schema: core_schema.BoolSchema) -> JsonSchemaValue:
        json_schema = super().bool_schema(schema)
        if not self._lax(schema):
            return json_schema
        text = {"type": "string", "pattern": rf"^\s*({_any_case(*_BOOL_WORDS)})\s*$"}
        return {"anyOf": [json_schema, {"enum": [0, 1]}, text]}

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        json_schema = super().str_schema(schema)
        if self._lax(schema) and self._setting(schema, "coerce_numbers_to_str", False):
            return {"anyOf": [json_schema, {"type": "number"}]}
        return json_schema

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        inner = super().function_before_schema(schema)
        if schema["function"]["function"] is normalise_single_key_maps:
            return {"anyOf": [inner, _single_key_list(inner)]}
        if not self._lax(schema) or (schema["schema"].get("metadata") or {}).get(
            "pydantic_js_annotation_functions"
        ):
            return inner  # the cluster models and authors who say what their validator takes
        return {"anyOf": [inner, {}]}  # a validator that may take anything: the loader judges

    def generate_inner(self, schema: Any) -> JsonSchemaValue:
        json_schema = super().generate_inner(schema)
        if json_schema.get("format") == "password" and "anyOf" in json_schema:
            json_schema.pop("type", None)  # SecretStr sets "string" over the widened choices
        return json_schema

    def handle_invalid_for_json_schema(
        self, schema: core_schema.CoreSchema, error_info: str
    ) -> JsonSchemaValue:
        return {}  # a custom type with no JSON Schema: anything, the loader judges


def _within(value: float, schema: Any) -> bool:
    """Whether ``value`` meets the schema's bounds (for bools read as 0 and 1)."""
    return not (
        ("ge" in schema and value < schema["ge"])
        or ("gt" in schema and value <= schema["gt"])
        or ("le" in schema and value > schema["le"])
        or ("lt" in schema and value >= schema["lt"])
    )


def _any_case(*words: str) -> str:
    """``yes`` -> ``[yY][eE][sS]``: ECMA-262 patterns have no case-insensitive flag."""
    return "|".join(
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word) for word in words
    )


def _single_key_list(mapping: JsonSchemaValue) -> JsonSchemaValue:
    """The ``- NAME: value`` spelling of ``mapping`` (one key per entry)."""
    entries = [alt for alt in mapping.get("anyOf", [mapping]) if alt.get("type") != "null"]
    one_key = {"minProperties": 1, "maxProperties": 1}
    return {"type": "array", "items": {"anyOf": [{**e, **one_key} for e in entries]}}


def _def_name(ref: JsonSchemaValue) -> str:
    return ref["$ref"].rsplit("/", 1)[-1]


def _reachable(roots: list[JsonSchemaValue], defs: dict[str, Any]) -> set[str]:
    """Names of the definitions the config schemas use, directly or through others."""
    found: set[str] = set()
    stack: list[Any] = list(roots)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in found:
                    found.add(name)
                    stack.append(defs[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


_VALUE_SLOTS = ("additionalProperties", "items")


def _allow_templates(node: Any) -> None:
    """Let every value inside a config schema be a template string instead."""
    if not isinstance(node, dict):
        return
    for name, value in (node.get("properties") or {}).items():
        _allow_templates(value)
        node["properties"][name] = _or_template(value)
    for slot in _VALUE_SLOTS:
        if isinstance(node.get(slot), dict):
            _allow_templates(node[slot])
            node[slot] = _or_template(node[slot])
    for alternatives in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for value in node.get(alternatives, ()):
            _allow_templates(value)
    if isinstance(node.get("prefixItems"), list):
        node["prefixItems"] = [_or_template(value) for value in node["prefixItems"]]


def _or_template(schema: Any) -> Any:
    if not isinstance(schema, dict) or TEMPLATE in schema.get("anyOf", ()):
        return schema
    kept = {k: schema[k] for k in ("title", "description", "default") if k in schema}
    return {"anyOf": [schema, TEMPLATE], **kept}

"""Markdown generated from the code: the cluster-format reference (from the pydantic models of
``yaml_loader.models``) and one page per registered satellite (from its config model).

Used by ``docs/hooks.py`` at build time, so the pages cannot drift from the models; also
runnable alone to print a page: ``python docs/gen_reference.py [yaml | SATELLITE-NAME]``.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

# (schema definition, YAML path shown as the section title, anchor)
FORMAT_SECTIONS = (
    ("ClusterFile", "top level", "top-level"),
    ("ClusterSpec", "cluster", "cluster"),
    ("TriggerSpec", "cluster.trigger", "cluster-trigger"),
    ("S3Trigger", "cluster.trigger.s3", "cluster-trigger-s3"),
    ("FolderTrigger", "cluster.trigger.folder", "cluster-trigger-folder"),
    ("SatelliteSpec", "cluster.satellites[]", "cluster-satellites"),
    ("Resources", "cluster.satellites[].resources", "cluster-satellites-resources"),
    ("BranchSpec", "cluster.logs", "cluster-logs"),
    ("FailureSpec", "cluster.failure", "cluster-failure"),
)

# Words for fields whose model has no description (the models stay terse).
FALLBACK = {
    "ClusterFile.version": "Format version: `0.0.1b`.",
    "ClusterFile.cluster": "The cluster.",
    "ClusterSpec.identifier": "`project/name` or `cluster/project/name` in lowercase; unique "
    "across a folder. Gives the job name: `/` becomes `__`, `-` becomes `_`.",
    "ClusterSpec.sla": "`6h`, `12h` or `24h`: the run's priority, time limit and node pool.",
    "ClusterSpec.trigger": "What starts a run; exactly one kind.",
    "ClusterSpec.title": "Shown in the UI with the job.",
    "ClusterSpec.description": "Shown in the UI as the job's description.",
    "ClusterSpec.retries": "Attempts after the first, for every satellite without its own "
    "`retries`.",
    "ClusterSpec.secrets": "Secrets by name: a reference (`env:NAME`, "
    "`aws-secretsmanager:ID[#key]`, a file path) or a literal (accepted with a warning). A "
    "mapping, or a list of `- NAME: value`.",
    "ClusterSpec.satellites": "The satellites in order; by default each one's parent is the one "
    "listed before it.",
    "ClusterSpec.logs": "Satellites that receive the cluster's log records in batches.",
    "ClusterSpec.failure": "Satellites run once per item that failed at `failure.from` or "
    "downstream of it.",
    "SatelliteSpec.description": "Free text shown in the UI.",
    "SatelliteSpec.parents": "Satellites whose items this one receives. Default: the one listed "
    "before it, plus every satellite its templates read.",
    "SatelliteSpec.children": "The other direction of `parents`: satellites that receive this "
    "one's items.",
    "SatelliteSpec.resources": "What this satellite's steps ask of a Kubernetes node.",
    "TriggerSpec.cron": "A cron expression (quote it): a schedule `<job>__schedule`.",
    "TriggerSpec.timezone": "IANA timezone of the cron expression; default UTC.",
    "TriggerSpec.api-call": "`true`, or write `trigger: api-call`: no schedule; runs are "
    "launched by API or by hand.",
    "TriggerSpec.s3": "A sensor: one run per batch of new objects under a bucket and prefix.",
    "TriggerSpec.folder": "A sensor: one run per batch of new files in a local folder.",
    "S3Trigger.bucket": "Bucket to watch.",
    "S3Trigger.prefix": "Key prefix to watch.",
    "S3Trigger.extension": "Only keys with this extension.",
    "S3Trigger.endpoint-url": "S3 endpoint (MinIO, moto...); default AWS.",
    "FolderTrigger.path": "Folder to watch.",
    "FolderTrigger.pattern": "Glob of the file names to pick up.",
    "BranchSpec.satellites": "The branch's satellites, in order.",
    "FailureSpec.satellites": "The failure branch's satellites, in order; each receives the "
    "failed item with its lineage and `failure.*` values.",
}


def prose(text: str) -> str:
    """Docstring text as Markdown: RST ````code```` becomes `code`; ``<`` outside code is escaped."""
    parts = str(text).replace("``", "`").split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def cell(text: str) -> str:
    return prose(" ".join(str(text).split())).replace("|", "\\|")


def _constraints(schema: dict[str, Any]) -> str:
    marks = []
    for key, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if key in schema:
            marks.append(f"{sign} {schema[key]}")
    if "minLength" in schema:
        marks.append(f"at least {schema['minLength']} characters")
    if "minItems" in schema:
        count = schema["minItems"]
        marks.append(f"at least {count} entr{'y' if count == 1 else 'ies'}")
    return f" ({', '.join(marks)})" if marks else ""


def render_type(schema: dict[str, Any], links: dict[str, str]) -> str:
    """A JSON-schema node as words: ``string``, ``list of string``, ``[trigger](#...)``."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{links[name][0]}](#{links[name][1]})" if name in links else name
    if "anyOf" in schema or "oneOf" in schema:
        options = [
            s for s in schema.get("anyOf", schema.get("oneOf", [])) if s.get("type") != "null"
        ]
        return " or ".join(render_type(s, links) for s in options) or "null"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type")
    if kind == "string":
        text = "secret string" if schema.get("format") == "password" else "string"
    elif kind == "array":
        text = f"list of {render_type(schema.get('items', {}), links)}"
    elif kind == "object":
        extra = schema.get("additionalProperties")
        text = f"mapping of {render_type(extra, links)}" if isinstance(extra, dict) else "mapping"
    elif isinstance(kind, list):
        text = " or ".join(kind)
    else:
        text = kind or "any"
    return text + _constraints(schema)


def render_default(name: str, schema: dict[str, Any], required: set[str]) -> str:
    if name in required:
        return "**required**"
    if "default" not in schema:
        return "—"
    value = schema["default"]
    if value is None:
        return "—"
    return f"`{json.dumps(value)}`"


def fields_table(
    definition: dict[str, Any], links: dict[str, str], fallback_prefix: str = ""
) -> list[str]:
    required = set(definition.get("required", []))
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, schema in definition.get("properties", {}).items():
        description = schema.get("description") or FALLBACK.get(f"{fallback_prefix}.{name}", "")
        rows.append(
            f"| `{name}` | {cell(render_type(schema, links))} | "
            f"{render_default(name, schema, required)} | {cell(description)} |"
        )
    return rows


def yaml_reference() -> str:
    """Every section of the cluster format, one table of keys each."""
    from yaml_loader.models import ClusterFile

    schema = ClusterFile.model_json_schema(by_alias=True)
    defs = {**schema.pop("$defs", {}), "ClusterFile": schema}
    links = {name: (path, anchor) for name, path, anchor in FORMAT_SECTIONS}
    out: list[str] = []
    for name, path, anchor in FORMAT_SECTIONS:
        definition = defs[name]
        out += [f"## `{path}` {{#{anchor}}}", ""]
        text = inspect.cleandoc(definition.get("description", "")) if name != "ClusterFile" else ""
        if text:
            out += [prose(text), ""]
        out += [*fields_table(definition, links, name), ""]
    return "\n".join(out)


# --- satellites --------------------------------------------------------------------------------


def builtin_registry():
    """Only the built-in satellites: the docs must not depend on the environment's plugins."""
    from satellite_ops.registry import SatelliteRegistry, builtin_modules

    registry = SatelliteRegistry()
    registry.load_modules(builtin_modules(), source="built-in satellites")
    return registry


def page_name(identifier: str) -> str:
    return identifier.rsplit("/", 1)[-1]


def model_tables(model: type, title: str) -> list[str]:
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})
    links = {name: (name, name.lower()) for name in defs}
    out = [*fields_table(schema, links), ""]
    for name, definition in defs.items():
        out += [f"### {name} {{#{name.lower()}}}", ""]
        if definition.get("description"):
            out += [prose(inspect.cleandoc(definition["description"])), ""]
        out += [*fields_table(definition, links), ""]
    return out


class _Block(str):
    """A multi-line string dumped as a YAML block scalar."""


yaml.SafeDumper.add_representer(
    _Block, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
)


def _blocks(value: Any) -> Any:
    if isinstance(value, str) and "\n" in value:
        return _Block(value)
    if isinstance(value, dict):
        return {k: _blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blocks(v) for v in value]
    return value


def example_entry(identifier: str) -> tuple[str, str] | None:
    """The first use of ``identifier`` in examples/*.yml, as YAML, with the file's name."""
    for path in sorted((REPO / "examples").glob("*.y*ml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            cluster = data["cluster"]
        except (yaml.YAMLError, TypeError, KeyError):
            continue
        entries = list(cluster.get("satellites") or [])
        for branch in ("logs", "failure"):
            entries += list((cluster.get(branch) or {}).get("satellites") or [])
        for entry in entries:
            if isinstance(entry, dict) and entry.get("uses") == identifier:
                text = yaml.safe_dump([_blocks(entry)], sort_keys=False, width=100)
                return path.name, text
    return None


def _minimal_example(definition) -> str:
    schema = definition.config_model.model_json_schema(by_alias=True)
    required = schema.get("required", [])
    config = {name: f"<{name}>" for name in required}
    entry: dict[str, Any] = {"uses": definition.identifier}
    if config:
        entry["config"] = config
    return yaml.safe_dump([entry], sort_keys=False)


def satellite_sections(definition) -> str:
    """What a satellite page shows below its title: facts, config table, input, example."""
    res = definition.resources
    resources = ", ".join(
        part
        for part in (
            f"cpu {res.cpu}" if res.cpu else "",
            f"memory {res.memory}" if res.memory else "",
            f"{res.gpu} GPU" if res.gpu else "",
        )
        if part
    )
    doc = inspect.getdoc(definition.fn) or ""
    out = [
        f"`uses: {definition.identifier}`",
        "",
        prose(doc),
        "",
        f"| function | `{definition.location}` |",
        "|---|---|",
        f"| runs | {'a whole chunk of items in one call (batched)' if definition.batched else f'once per item, up to {definition.max_concurrency} at a time in a step'} |",
        f"| resources | {resources or 'defaults of the deployment'} |",
        "",
        "## Configuration",
        "",
        "Keys of the satellite's `config:` block, checked against "
        f"`{definition.config_model.__module__}.{definition.config_model.__name__}` when the "
        "cluster file loads. Values may be templates (`${{ ... }}`): those are checked once filled "
        "in, per item.",
        "",
        *model_tables(definition.config_model, "config"),
        *_launch_section(definition.config_model),
    ]
    if definition.input_model is not None:
        out += [
            "## Input",
            "",
            "Keys of the `input:` block (default: the parent's output object).",
            "",
            *model_tables(definition.input_model, "input"),
        ]
    found = example_entry(definition.identifier)
    if found:
        out += [
            "## Example",
            "",
            f"From `examples/{found[0]}`:",
            "",
            "```yaml",
            found[1].rstrip(),
            "```",
            "",
        ]
    else:
        out += ["## Example", "", "```yaml", _minimal_example(definition).rstrip(), "```", ""]
    return "\n".join(out)


def _launch_section(model) -> list[str]:
    """What a launch may not change (satellite_ops.launch), when the model fixes anything."""
    from satellite_ops.launch import launch_fields

    fixed = list(launch_fields(model).fixed)
    if not fixed:
        return []
    keys = ", ".join(f"`{key}`" for key in fixed)
    return [
        "### Fixed at launch",
        "",
        f"{keys} name what this satellite's credentials act on. The Launchpad shows the cluster "
        "file's values, and a run launched with other ones (Launchpad, GraphQL `launchRun`, "
        "`exosphere clusters run`) is refused before any satellite runs. To let launches change "
        f"them, list them in the satellite's entry: `launch-editable: [{fixed[0]}]`. Where "
        "its credentials are sent (endpoint, region) is never editable at launch.",
        "",
    ]


def satellite_page(definition) -> str:
    return f"# {page_name(definition.identifier)}\n\n{satellite_sections(definition)}"


def satellite_index(registry) -> str:
    rows = ["| satellite | uses | what it does |", "|---|---|---|"]
    for identifier in registry.identifiers():
        definition = registry.get(identifier)
        name = page_name(identifier)
        rows.append(f"| [{name}]({name}.md) | `{identifier}` | {cell(definition.description)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.path[:0] = [str(REPO / "src")]
    what = sys.argv[1] if len(sys.argv) > 1 else "yaml"
    if what == "yaml":
        sys.stdout.write(yaml_reference() + "\n")
    else:
        registry = builtin_registry()
        matches = [i for i in registry.identifiers() if page_name(i) == what]
        page = satellite_page(registry.get(matches[0])) if matches else satellite_index(registry)
        sys.stdout.write(page + "\n")

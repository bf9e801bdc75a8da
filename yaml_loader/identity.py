"""The identity rule, in one place: a cluster identifier -> its job name -> its store file name,
and every other name Dagster will see for a cluster (op and graph definitions, schedules,
sensors, asset keys), so that collisions are found before anything is built.

- ``job_name_for("cluster/aikin/strucutred-pdfs")`` is ``aikin__strucutred_pdfs``;
  ``file_name_for`` is that job name plus ``.yml`` (the clusters store's file name);
  ``op_name_for`` turns a satellite identifier into its node name (``-`` -> ``_``).
- The project adds nodes of its own to every job (``PROJECT_NODES``, the ``__rechunk`` and
  ``__join`` gather nodes, the ``<job>__sla_breach`` alert job); ``reserved_node_problem``
  says why a satellite's node name would clash with one of them.
- ``check_folder`` takes the planned clusters of a folder (in folder order) and its broken
  files: a cluster whose names collide with an earlier file's becomes broken, with a located
  error naming both files, and every broken file gets a unique ``invalid__...`` job name.

The builder (``exosphere_dagster.translate``) uses the same constants; a test builds real
Definitions and checks that every name Dagster sees is one ``claims`` predicted.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Literal

from yaml_loader.errors import ConfigError, KeyPath

if TYPE_CHECKING:
    from yaml_loader.ir import ClusterPlan

SEPARATOR = "__"  # between identifier parts, and between a job name and its nodes' names
STORE_SUFFIX = ".yml"
INVALID_PREFIX = "invalid__"
REPORT_NODE = "report"  # the one op of a broken file's stand-in job: ``<invalid job>__report``
PROJECT_PREFIX = "exosphere__"
START_NODE = "exosphere__start"
SUMMARY_NODE = "exosphere__summary"
FAILURES_NODE = "exosphere__failures"
BREACH_NODE = "exosphere__sla_breach"
BREACH = "sla_breach"  # the alert job is ``<job>__sla_breach``, its ops ``<job>__sla_breach__*``
PROJECT_NODES = frozenset({START_NODE, SUMMARY_NODE, FAILURES_NODE, BREACH_NODE})
GATHER_SUFFIXES = ("__rechunk", "__join")  # ``<satellite op>__rechunk``, ``<satellite op>__join``
# names Dagster refuses for a node (its DISALLOWED_NAMES: a test keeps the two equal)
DAGSTER_RESERVED = frozenset(
    {
        *("context", "conf", "config", "meta", "arg_dict", "dict", "input_arg_dict"),
        *("output_arg_dict", "int", "str", "float", "bool", "input", "output", "type"),
        *keyword.kwlist,
    }
)

Namespace = Literal["job", "node", "trigger", "asset"]
NAMESPACE_WORDS: Mapping[str, str] = {
    "job": "job",
    "node": "op/graph definition",
    "trigger": "schedule/sensor",
    "asset": "asset key",
}


def job_name_for(identifier: str) -> str:
    """``cluster/aikin/strucutred-pdfs`` -> ``aikin__strucutred_pdfs``."""
    return identifier.removeprefix("cluster/").replace("/", SEPARATOR).replace("-", "_")


def op_name_for(satellite_id: str) -> str:
    """A satellite identifier as a Dagster node name (``parse-pdf`` -> ``parse_pdf``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", satellite_id)


def file_name_for(identifier: str) -> str:
    """The clusters store's file for a cluster: ``tour/hello`` -> ``tour__hello.yml``, so one
    job is one file and applying a cluster again replaces it."""
    return job_name_for(identifier) + STORE_SUFFIX


def breach_job_name(job_name: str) -> str:
    """The SLA-breach alert job of a cluster's job."""
    return f"{job_name}{SEPARATOR}{BREACH}"


def definition_name(job_name: str, node_name: str) -> str:
    """The op definition of a job's node: unique across the code location."""
    return f"{job_name}{SEPARATOR}{node_name}"


def invalid_job_name(path: str | PurePath) -> str:
    """The stand-in job of a broken file, before ``check_folder`` makes it unique:
    ``clusters/my-report.yml`` -> ``invalid__my_report``."""
    return INVALID_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", PurePath(str(path)).stem)


def reserved_node_problem(op_name: str) -> str | None:
    """Why a satellite's node name would clash with a node the project adds, or with a name
    Dagster refuses; None when it is free."""
    if op_name in DAGSTER_RESERVED:
        return f"'{op_name}' is a name Dagster refuses for a node (a Python or Dagster keyword)"
    if op_name in PROJECT_NODES or op_name.startswith(PROJECT_PREFIX):
        return f"'{op_name}' is a node name the project adds to every job (exosphere__...)"
    if op_name == BREACH or op_name.startswith(BREACH + SEPARATOR):
        return (
            f"'{op_name}' would clash with the cluster's SLA-breach alert job ('<job>__{BREACH}')"
        )
    for suffix in GATHER_SUFFIXES:
        if op_name.endswith(suffix):
            return (
                f"'{op_name}' ends like the gather nodes the project adds ('<satellite>{suffix}')"
            )
    return None


@dataclass(frozen=True)
class Claim:
    """One name a cluster makes Dagster see, and where in its file it comes from."""

    namespace: Namespace
    name: str
    file: str
    line: int
    column: int
    key_path: KeyPath
    identifier: str


def _node_names(op_names: Iterable[str]) -> set[str]:
    names = set(PROJECT_NODES)
    for op in op_names:
        names.add(op)
        names.update(op + suffix for suffix in GATHER_SUFFIXES)
    return names


def claims(plan: ClusterPlan, file: str | None = None) -> list[Claim]:
    """Every name the cluster's definitions may carry, by namespace. Gather nodes are claimed
    for every satellite (whether one is cut depends on the satellites), so the claim is a
    superset of what the builder makes: never less. ``file`` is how errors name the plan's
    file (default ``plan.file``)."""
    at, shown = _where(plan), file or plan.file
    out: list[Claim] = []

    def claim(namespace: Namespace, name: str, key_path: KeyPath = ("cluster", "identifier")):
        line, column = at.get(key_path, (plan.identifier_line, plan.identifier_column))
        out.append(Claim(namespace, name, shown, line, column, key_path, plan.identifier))

    job = plan.job_name
    claim("job", job)
    claim("node", job)  # the job's graph
    for name in sorted(_node_names(n.op_name for n in (*plan.nodes, *plan.failure_nodes))):
        claim("node", definition_name(job, name), _node_path(plan, name))
    if plan.failure_nodes or plan.log_nodes:
        alert = breach_job_name(job)
        claim("job", alert)
        claim("node", alert)
        for name in sorted(_node_names(n.op_name for n in plan.failure_nodes)):
            claim("node", definition_name(alert, name), _node_path(plan, name))
        # the alert op is named after the alert plan's own alert job (sla_breach.py)
        claim("node", definition_name(breach_job_name(alert), BREACH_NODE))
    trigger = plan.trigger
    for on, suffix in ((trigger.cron, "schedule"), (trigger.s3, "s3"), (trigger.folder, "files")):
        if on:
            claim("trigger", f"{job}{SEPARATOR}{suffix}", ("cluster", "identifier"))
    for node in (*plan.nodes, *plan.failure_nodes):
        claim("asset", f"{job}/{node.op_name}", _node_path(plan, node.op_name))
    return out


def _where(plan: ClusterPlan) -> dict[KeyPath, tuple[int, int]]:
    where: dict[KeyPath, tuple[int, int]] = {
        ("cluster", "identifier"): (plan.identifier_line, plan.identifier_column)
    }
    for node in (*plan.nodes, *plan.failure_nodes, *plan.log_nodes):
        where[node.key_path] = (node.line, node.column)
    return where


def _node_path(plan: ClusterPlan, node_name: str) -> KeyPath:
    """The satellite a node name comes from (its gather nodes included); else the identifier."""
    for node in (*plan.nodes, *plan.failure_nodes):
        if node_name == node.op_name or node_name in (node.op_name + s for s in GATHER_SUFFIXES):
            return node.key_path or ("cluster", "identifier")
    return ("cluster", "identifier")


@dataclass
class FolderIdentity:
    """What ``check_folder`` decided: the clusters kept, new errors by file (clusters that
    collide with an earlier file), and the unique stand-in job name of every broken file."""

    plans: list[ClusterPlan] = field(default_factory=list)
    errors: dict[str, list[ConfigError]] = field(default_factory=dict)
    invalid_names: dict[str, str] = field(default_factory=dict)


def check_folder(
    files: Sequence[tuple[str, Sequence[ClusterPlan]]], broken: Iterable[str]
) -> FolderIdentity:
    """``files``: each file of a folder (as errors name it) with the clusters it plans, in
    folder order. Keep each file whose names no earlier kept file took (first come, first
    served, the same rule for every namespace); the others become broken, with an error naming
    both files. Then name every broken file's stand-in job uniquely."""
    result = FolderIdentity()
    owners: dict[tuple[str, str], Claim] = {}
    for file, planned in files:
        errors, mine = _collisions(file, planned, owners)
        if errors:
            result.errors[file] = errors
            continue
        owners.update(mine)
        result.plans.extend(planned)
    broken_files = list(dict.fromkeys([*broken, *result.errors]))
    result.invalid_names = invalid_job_names(broken_files, owners, result.errors)
    return result


def owners_of(plans: Iterable[ClusterPlan]) -> dict[tuple[str, str], Claim]:
    """Every name ``plans`` (already free of collisions) claim, by (namespace, name)."""
    return {(c.namespace, c.name): c for plan in plans for c in claims(plan)}


def _collisions(
    file: str, planned: Sequence[ClusterPlan], owners: Mapping[tuple[str, str], Claim]
) -> tuple[list[ConfigError], dict[tuple[str, str], Claim]]:
    """The file's collisions with earlier files' names (and between its own clusters)."""
    errors: list[ConfigError] = []
    mine: dict[tuple[str, str], Claim] = {}
    reported: set[tuple[str, str]] = set()
    for plan in planned:
        own = {(c.namespace, c.name): c for c in claims(plan, file)}
        for key, claim in own.items():
            first = owners.get(key) or mine.get(key)
            pair = (first.identifier, claim.identifier) if first else None
            if pair and pair not in reported:
                reported.add(pair)
                errors.append(_collision_error(first, claim))
        mine.update((key, claim) for key, claim in own.items() if key not in mine)
    return errors, mine


def _collision_error(first: Claim, claim: Claim) -> ConfigError:
    what = NAMESPACE_WORDS[claim.namespace]
    same_id = first.identifier == claim.identifier
    message = (
        f"cluster '{claim.identifier}' is already defined in {first.file}"
        f":{first.line}:{first.column} ({what} '{claim.name}')"
        if same_id
        else f"cluster '{claim.identifier}' and cluster '{first.identifier}' "
        f"({first.file}:{first.line}:{first.column}) both make Dagster {what} '{claim.name}'"
    )
    hint = (
        "cluster identifiers must be unique across the folder"
        if same_id
        else "names are compared after '/' -> '__' and '-' -> '_': rename the cluster or the "
        "satellite so that the names differ"
    )
    return ConfigError(claim.file, claim.line, claim.column, claim.key_path, message, hint=hint)


def invalid_job_names(
    broken: Sequence[str],
    owners: Mapping[tuple[str, str], object],
    errors: dict[str, list[ConfigError]] | None = None,
) -> dict[str, str]:
    """A unique stand-in job name for each broken file, deterministic for a given folder: the
    plain ``invalid__<stem>`` unless a cluster or an earlier broken file has it, else that name
    plus a hash of the file's path. The clash is noted in ``errors`` under the file."""
    names: dict[str, str] = {}
    taken_by: dict[str, str] = {}

    def free(name: str) -> bool:
        node = definition_name(name, REPORT_NODE)
        return (
            ("job", name) not in owners
            and ("node", name) not in owners
            and ("node", node) not in owners
            and name not in taken_by
        )

    for file in broken:
        base = invalid_job_name(file)
        name, digest = base, hashlib.sha256(file.encode()).hexdigest()
        width = 8
        while not free(name):
            name = f"{base}{SEPARATOR}{digest[:width]}"
            width += 4
        if name != base and errors is not None:
            other = taken_by.get(base) or _owner_file(owners, base)
            errors.setdefault(file, []).append(
                ConfigError(
                    file,
                    1,
                    1,
                    (),
                    f"its stand-in job name '{base}' is already used by {other}: shown as '{name}'",
                    hint="rename the file so that its name differs from other clusters' names",
                )
            )
        names[file] = name
        taken_by[name] = file
    return names


def _owner_file(owners: Mapping[tuple[str, str], object], name: str) -> str:
    for key in (("job", name), ("node", name), ("node", definition_name(name, REPORT_NODE))):
        claim = owners.get(key)
        if isinstance(claim, Claim):
            return f"{claim.file} (cluster '{claim.identifier}')"
    return "another file"

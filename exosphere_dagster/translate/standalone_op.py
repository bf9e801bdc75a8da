"""A satellite as an op in a hand-written Python Dagster job.

The same path as a cluster file: the arguments become a one-satellite cluster's data that the
loader validates as data, no YAML text in between (errors name the Python call site's line), the op's config schema comes from the satellite's
model with these values as defaults, and the op runs its input objects through the same step
runtime (per-item retries, concurrency, checkpoints, redaction).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import Any as DagsterAny
from dagster import Failure, In, MetadataValue, OpDefinition, Out, Output

from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.resolve import resolve
from exosphere_dagster.runtime.items import seed_items
from exosphere_dagster.runtime.secrets import redaction_values
from exosphere_dagster.runtime.step_runner import StepRunner
from exosphere_dagster.translate.launchpad.edits import config_schema, configured_node
from exosphere_dagster.translate.ops import step_retry
from exosphere_dagster.translate.step_reports import MAX_LISTED
from yaml_loader import plan
from yaml_loader.load import load_document
from yaml_loader.source import Position, SourceMap


def satellite_as_op(
    uses: str,
    *,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    input: Mapping[str, Any] | None = None,  # noqa: A002 - the cluster format's key
    secrets: Mapping[str, str] | None = None,
    retries: int | None = None,
    delay: str | float = 1.0,
    timeout: str | float | None = None,
    concurrency: int | None = None,
) -> OpDefinition:
    """An op that runs satellite ``uses`` once per object of its ``objects`` input (a list of
    dicts; ``[{}]`` when nothing is wired in) and returns every object it produced.

    ``config`` and ``input`` are written as in a cluster file: ``${{ run.input.field }}`` reads
    the current object, ``${{ secrets.NAME }}`` a secret declared in ``secrets`` (``env:NAME``,
    ``aws-secretsmanager:ID``, a file path). Items that still fail after ``retries`` fail the
    step, named, after the others are checkpointed: re-executing from failure retries only them.
    ``retries`` left out is a cluster file's default (5). Step retries, like a cluster's, come
    from the resolved plan under the environment's deployment.
    """
    caller = inspect.stack()[1]
    where = SourceMap(caller.filename, values={(): Position(caller.lineno, 1)})
    op_name = (name or uses.rsplit("/", 1)[-1]).replace("-", "_")
    satellite: dict[str, Any] = {"uses": uses, "identifier": op_name.replace("_", "-")}
    for key, value in (("config", config), ("input", input), ("timeout", timeout)):
        if value is not None:
            satellite[key] = dict(value) if isinstance(value, Mapping) else value
    if concurrency is not None:
        satellite["concurrency"] = concurrency
    cluster = {
        "identifier": f"python/{op_name.replace('_', '-')}",
        "sla": "24h",
        "trigger": "api-call",
        **({"retries": retries} if retries is not None else {}),
        "delay": delay,
        "secrets": [{k: v} for k, v in (secrets or {}).items()],
        "satellites": [satellite],
    }
    registry = registry_with_plugins()
    one = plan(load_document({"version": "0.0.1b", "cluster": cluster}, where), registry)
    (node,) = one.nodes
    execution = resolve(one, Deployment.load(), registry)
    planned = execution.node(node.id)
    definition = planned.definition

    def compute(context, inputs: dict[str, Any]) -> Iterator[Output]:
        objects = inputs.get("objects")
        secrets = redaction_values(one.secrets)
        items = seed_items(list(objects) if objects is not None else [{}], secrets)
        runner = StepRunner(
            context,
            execution,
            Deployment.load(),  # a hand-written job need not provide the exosphere resource
            lambda n: configured_node(n, definition, context.op_config),
        )
        try:
            children, report = runner.run(node, "all", items)
        finally:
            runner.close()
        if report.failed:
            listed = "\n".join(f"  {f.item.id}: {f.error}" for f in report.failed[:MAX_LISTED])
            raise Failure(
                description=f"{len(report.failed)} of {report.items_in} object(s) failed at "
                f"{uses}:\n{listed}\nRe-execute from failure to retry only these.",
                allow_retries=False,
            )
        yield Output(
            [child.value for child in children],
            "objects",
            metadata={
                "items_in": report.items_in,
                "succeeded": report.succeeded,
                "resumed_from_checkpoint": report.resumed,
                "items_out": len(children),
                "item_ids": MetadataValue.text(", ".join(c.id for c in children[:MAX_LISTED])),
            },
        )

    return OpDefinition(
        compute_fn=compute,
        name=op_name,
        ins={"objects": In(DagsterAny, default_value=None)},
        outs={"objects": Out(DagsterAny)},
        config_schema=config_schema(node, definition),
        description=f"{uses} (exosphere satellite)",
        retry_policy=step_retry(planned),
    )

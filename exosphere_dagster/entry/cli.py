"""The ``exosphere`` command: validate, plan, schema, run, dev, and ``clusters`` (the cluster
API against a running webserver, clusters_cli.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from exosphere_dagster.entry.clusters.cli import clusters
from exosphere_dagster.resolve.catalog import load_catalog, registry_with_plugins
from yaml_loader import ClusterPlan
from yaml_loader.ir import RetrySettings


def _ensure_dagster_home() -> Path:
    """The instance folder, with its storage created once (under a lock) before any run starts:
    runs started at once on a fresh SQLite home would otherwise race on its schema."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # a local SQLite instance; no telemetry prompt on first use
        tmp = home / f".dagster.yaml.{os.getpid()}"
        tmp.write_text("telemetry:\n  enabled: false\n")
        tmp.replace(config)  # atomic: a process starting beside this one never reads half a file
    os.environ["DAGSTER_HOME"] = str(home)
    from exosphere_dagster.entry.launch import init_instance

    init_instance()
    return home


@click.group()
def main() -> None:
    """Exosphere clusters (YAML) as Dagster jobs."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
def validate(paths: tuple[str, ...]) -> None:
    """Check cluster files (.yml/.yaml, or .py files that build clusters) or folders of them;
    exit 1 on any error."""
    catalog = load_catalog(list(paths), log=False)
    for cluster in catalog.plans:
        click.echo(f"ok: {cluster.file} ({cluster.identifier}, {len(cluster.nodes)} satellites)")
        for warning in cluster.warnings:
            click.echo(f"warning: {warning}", err=True)
    for error in catalog.errors:
        click.echo(str(error), err=True)
    if catalog.broken:
        count = len(catalog.errors)
        click.echo(
            f"{count} error{'s' if count != 1 else ''} in {len(catalog.broken)} file(s)", err=True
        )
        sys.exit(1)


@main.command("plan")
@click.argument("path")
def plan_command(path: str) -> None:
    """Print a cluster's satellite graph, trigger, SLA tier and tags."""
    catalog = load_catalog([path], log=False)
    if catalog.broken:
        for error in catalog.errors:
            click.echo(str(error), err=True)
        sys.exit(1)
    from exosphere_dagster.resolve.cost.estimate import plan_cost_lines
    from exosphere_dagster.resolve.cost.prices import PriceTableError
    from exosphere_dagster.resolve.placement import PlacementError

    for cluster in catalog.plans:
        try:
            click.echo(render_plan(cluster))
            click.echo("\n".join(plan_cost_lines(cluster, registry_with_plugins())))
        except (PriceTableError, PlacementError) as exc:  # deployment files, not the cluster's
            click.echo(f"  cost estimate: {exc}", err=True)
            sys.exit(1)


def render_plan(cluster: ClusterPlan) -> str:
    from exosphere_dagster.resolve.placement import PlacementPolicy
    from exosphere_dagster.resolve.tags import sla_run_tags

    lines = [
        f"cluster {cluster.identifier}  (job {cluster.job_name}, file {cluster.file})",
        f"  sla: {cluster.sla.name} (priority {cluster.sla.priority}, max runtime {cluster.sla.seconds}s)",
        f"  trigger: {cluster.trigger_text}",
        "  satellites:",
    ]

    def node_lines(nodes, root: str, indent: str = "    ", sink: bool = False) -> None:
        for n in nodes:
            parents = ", ".join(n.parents) or root
            lines.append(
                f"{indent}{n.id}  [{n.uses}]  parents: {parents}  "
                + attempts_text(n.retry)
                + (SINK_DELIVERY if sink else "")
            )

    node_lines(cluster.nodes, "(run input)")
    if cluster.failure_nodes:
        routed = ", ".join(n.id for n in cluster.nodes if n.id in cluster.routed_nodes())
        lines.append(f"  failure branch (from {cluster.failure_from}; items failing at: {routed}):")
        node_lines(cluster.failure_nodes, "(failed items)")
    if cluster.log_nodes:
        lines.append("  log sinks:")
        node_lines(cluster.log_nodes, "(log records)", sink=True)
    lines.append(
        "  run tags: "
        + ", ".join(f"{k}={v}" for k, v in sla_run_tags(cluster, PlacementPolicy.load()).items())
    )
    for warning in cluster.warnings:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


SINK_DELIVERY = ", per batch of records; never fails or holds up the run"


def attempts_text(retry: RetrySettings) -> str:
    """What the runtime does with a failing item: every attempt is one client call (satellites
    do not retry inside), so these are the calls a failing endpoint sees per item."""
    text = f"attempts: {retry.retries + 1} (retries: {retry.retries})"
    if retry.retries:
        text += (
            f", backoff {retry.delay:g}s x{retry.backoff:g} up to {retry.max_delay:g}s, "
            "honours Retry-After"
        )
    return text


@main.command()
def schema() -> None:
    """Print the JSON Schema of the cluster format (for yaml-language-server)."""
    from exosphere_dagster.entry.schema import cluster_json_schema

    click.echo(json.dumps(cluster_json_schema(registry_with_plugins()), indent=2))


@main.command()
@click.argument("path")
@click.option(
    "--input", "inputs", multiple=True, help="A JSON object: one run input item (repeatable)."
)
def run(path: str, inputs: tuple[str, ...]) -> None:
    """Run one cluster now on the local Dagster instance, printing progress."""
    catalog = load_catalog([path], log=False)
    if catalog.broken:
        for error in catalog.errors:
            click.echo(str(error), err=True)
        sys.exit(1)
    home = _ensure_dagster_home()
    from exosphere_dagster.entry.launch import run_cluster_file

    try:
        items = [json.loads(i) for i in inputs] or [{}]
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"--input must be a JSON object: {exc}") from None
    result = run_cluster_file(path, items, echo=click.echo)
    click.echo(
        f"run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'} (instance {home})"
    )
    sys.exit(0 if result.success else 1)


@main.command()
def demo() -> None:
    """Run the financial-reports demo end to end on embedded S3 and a local webhook."""
    home = _ensure_dagster_home()
    from exosphere_dagster.entry.demo.run import run_demo

    click.echo(f"demo: Dagster instance at {home}")
    sys.exit(run_demo(click.echo))


@main.command()
@click.argument("run_id")
@click.option(
    "--from-failure",
    is_flag=True,
    help="Dagster's from-failure step selection instead of all steps.",
)
def rerun(run_id: str, from_failure: bool) -> None:
    """Re-execute a run; items that already succeeded come from checkpoints, not satellites."""
    _ensure_dagster_home()
    from exosphere_dagster.entry.launch import rerun as rerun_run

    try:
        result = rerun_run(run_id, from_failure=from_failure)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"run {result.run_id} (re-execution of {run_id}): {'SUCCESS' if result.success else 'FAILURE'}"
    )
    sys.exit(0 if result.success else 1)


@main.command()
@click.argument("folder", required=False)
@click.option("--port", default=3000, show_default=True)
def dev(folder: str | None, port: int) -> None:
    """Start `dg dev` (Dagster's dev server) on a watched clusters store: a folder or an
    s3://bucket/prefix (default: EXOSPHERE_CLUSTERS_DIR, else ./clusters)."""
    from exosphere_dagster.entry.devserver import serve
    from exosphere_dagster.resolve.settings import settings

    _ensure_dagster_home()
    sys.exit(serve(folder or settings().clusters_dir, port))


main.add_command(clusters)


if __name__ == "__main__":  # pragma: no cover
    main()

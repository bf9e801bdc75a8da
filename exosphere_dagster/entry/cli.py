"""The ``exosphere`` command: validate, plan, schema, run, dev, and ``clusters`` (the cluster
API against a running webserver, clusters_cli.py)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import click

from exosphere_dagster.entry.clusters.cli import clusters
from exosphere_dagster.entry.run_inputs import parse_inputs
from exosphere_dagster.errors import DeploymentError
from exosphere_dagster.resolve.catalog import Catalog, load_catalog, registry_with_plugins
from exosphere_dagster.resolve.deployment import Deployment


def _ensure_dagster_home(instance: str = "telemetry:\n  enabled: false\n") -> Path:
    """The instance folder, with its storage created once (under a lock) before any run starts:
    runs started at once on a fresh SQLite home would otherwise race on its schema. A home
    without a dagster.yaml gets ``instance``."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # a local SQLite instance; no telemetry prompt on first use
        tmp = home / f".dagster.yaml.{os.getpid()}"
        tmp.write_text(instance)
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
@click.option(
    "--no-build",
    is_flag=True,
    help="Load, plan and resolve only; skip building the Dagster jobs (faster: no Dagster).",
)
def validate(paths: tuple[str, ...], no_build: bool) -> None:
    """Check cluster files (.yml/.yaml, or .py files that build clusters) or folders of them,
    as far as the code location goes: their Dagster jobs are built too; exit 1 on any error."""
    catalog = load_catalog(list(paths), log=False, deployment=_deployment())
    if not no_build and catalog.plans:
        _refuse_unbuildable(catalog)
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


def _refuse_unbuildable(catalog: Catalog) -> None:
    """Move the plans whose Dagster jobs cannot be built to the catalog's broken files."""
    from exosphere_dagster.definitions import build_errors

    errors = build_errors(catalog)
    catalog.broken.update(errors)
    catalog.plans = [cluster for cluster in catalog.plans if cluster.file not in errors]


@main.command("plan")
@click.argument("path")
def plan_command(path: str) -> None:
    """Print a cluster's satellite graph, trigger, run policy (SLA tier, priority, maximum
    runtime, deadline rule), each step's chunking, pod and Batch API use, its tags and its cost
    estimate: all read from the resolved plan that translate and the runtime read."""
    from exosphere_dagster.entry.plan_view import render_plan
    from exosphere_dagster.resolve.cost.estimate import estimate_lines

    deployment = _deployment()
    catalog = load_catalog([path], log=False, deployment=deployment)
    if catalog.broken:
        _fail(catalog.errors)
    for cluster in catalog.plans:
        execution = catalog.executions[cluster.job_name]
        click.echo(render_plan(execution, deployment))
        if deployment.prices is None:
            click.echo(f"  cost estimate: {deployment.prices_problem}", err=True)
            sys.exit(1)
        click.echo("\n".join(estimate_lines(execution, deployment.prices)))


def _deployment() -> Deployment:
    """The process's deployment; one that cannot be used (its settings, placement file) ends
    the command with its errors, as the code location shows nothing but them."""
    try:
        return Deployment.load()
    except DeploymentError as exc:  # the deployment's settings or files, not the cluster's
        _fail(exc.errors or [exc])


def _fail(errors: Iterable[object]) -> NoReturn:
    for error in errors:
        click.echo(str(error), err=True)
    sys.exit(1)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the cluster format (for yaml-language-server)."""
    from exosphere_dagster.entry.schema import cluster_json_schema

    click.echo(json.dumps(cluster_json_schema(registry_with_plugins()), indent=2))


@main.command()
@click.argument("path")
@click.option("--input", "inputs", multiple=True, help="A JSON object (or list): run input items.")
def run(path: str, inputs: tuple[str, ...]) -> None:
    """Run one cluster now on the local Dagster instance, printing progress."""
    catalog = load_catalog([path], log=False, deployment=_deployment())
    if catalog.broken:
        for error in catalog.errors:
            click.echo(str(error), err=True)
        sys.exit(1)
    home = _ensure_dagster_home()
    from exosphere_dagster.entry.launch import run_cluster_file

    items = parse_inputs(inputs)
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
    from exosphere_dagster.entry.devserver import DEV_INSTANCE, serve

    _ensure_dagster_home(DEV_INSTANCE)
    if folder is None:
        try:
            folder = Deployment.load().settings.clusters_dir
        except DeploymentError as exc:  # no folder to watch: the deployment's error, not a trace
            raise click.ClickException(str(exc)) from None
    sys.exit(serve(folder, port))


@main.command("code-server")
@click.option("--port", "-p", type=int, required=True)
@click.option("--host", "-h", default="127.0.0.1", show_default=True)
@click.option("--parent-pid", type=int, hidden=True)  # stop when this process is gone
def code_server(port: int, host: str, parent_pid: int | None) -> None:
    """Serve the code location (EXOSPHERE_CLUSTERS_DIR) over gRPC, rebuilt in place when the
    clusters change: point a workspace's grpc_server entry at it."""
    from exosphere_dagster.entry.code_server import serve as serve_code

    serve_code(port, host, parent_pid=parent_pid)


main.add_command(clusters)


if __name__ == "__main__":  # pragma: no cover
    main()

"""``exosphere clusters``: the cluster API, over a Dagster webserver's GraphQL API (``--url``).

The webserver's code location publishes its clusters store (resource
``exosphere_clusters_store``); ``apply`` and ``delete`` write there with the caller's own
credentials (``--store`` overrides), then reload the location (cluster_apply.py). ``list``,
``status``, ``logs`` and ``run`` only ask the webserver. Human output by default, ``--json``
for scripts.

Exit codes: 0 done; 1 refused (an invalid file, an unknown cluster or run, a failed run);
2 bad usage; 3 the webserver or the store did not answer. See docs/cluster-api.md.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import click

from exosphere_dagster.entry.clusters import apply as cluster_apply
from exosphere_dagster.entry.clusters.graphql import (
    DEFAULT_URL,
    ApiError,
    DagsterApi,
    JobInfo,
    Location,
    RunInfo,
    Unreachable,
)
from exosphere_dagster.entry.clusters.records import records
from exosphere_dagster.entry.clusters.settle import CLUSTER_TAG
from exosphere_dagster.entry.clusters.store import StoreError, StoreUnreachable, open_store
from exosphere_dagster.entry.clusters.views import (
    COUNTS,
    counts,
    dash,
    record_line,
    run_summary,
    table,
    when,
)
from exosphere_dagster.entry.run_inputs import parse_inputs
from yaml_loader.identity import job_name_for

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


class Refused(click.ClickException):
    exit_code = 1


class NoAnswer(click.ClickException):
    exit_code = 3


@contextlib.contextmanager
def answers() -> Iterator[None]:
    """The API's and the store's errors as exit codes (3: no answer, 1: refused)."""
    try:
        yield
    except (Unreachable, StoreUnreachable) as exc:
        raise NoAnswer(str(exc)) from None
    except (ApiError, StoreError) as exc:
        raise Refused(str(exc)) from None


def server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--url``, ``--location`` and ``--json``, on every command."""
    for option in (
        click.option("--json", "as_json", is_flag=True, help="JSON on stdout, for scripts."),
        click.option("--location", default=None, help="The code location, if there are several."),
        click.option(
            "--url",
            envvar="EXOSPHERE_URL",
            default=DEFAULT_URL,
            show_default=True,
            help="The Dagster webserver (or env EXOSPHERE_URL).",
        ),
    ):
        command = option(command)
    return command


def _connect(url: str, location: str | None) -> tuple[DagsterApi, Location]:
    api = DagsterApi(url)
    return api, api.location(location)


def _emit(as_json: bool, data: Any, human: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else human)


@click.group()
def clusters() -> None:
    """Create, delete, list, run and follow clusters on a running Dagster webserver."""


@clusters.command()
@click.argument("files", nargs=-1, required=True)
@server_options
@click.option("--store", "store_url", default=None, help="Write here, not where the server says.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the server.")
def apply(
    files: tuple[str, ...],
    url: str,
    location: str | None,
    as_json: bool,
    store_url: str | None,
    timeout: float,
) -> None:
    """Validate cluster files (.yml, .yaml, .py), store them, and reload the server."""
    found, errors = cluster_apply.validate(list(files))  # before any connection
    if errors:
        for error in errors:
            click.echo(str(error), err=True)
        if as_json:
            click.echo(json.dumps({"errors": [str(e) for e in errors]}, indent=2))
        raise Refused(f"refused: {len(errors)} error(s); nothing was changed")
    with answers():
        api, loc = _connect(url, location)
        store = open_store(store_url or loc.store_url)
        changes = cluster_apply.apply(api, loc, store, found, timeout)
    rows = [
        {"identifier": c.identifier, "job": c.job, "file": c.where, "action": c.action}
        for c in changes
    ]
    human = "\n".join(
        f"{r['action']}: {r['identifier']} (job {r['job']}, {r['file']})" for r in rows
    )
    _emit(as_json, {"store": store.url, "applied": rows}, human)


@clusters.command()
@click.argument("identifier")
@server_options
@click.option("--store", "store_url", default=None, help="Delete here, not where the server says.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the server.")
def delete(
    identifier: str,
    url: str,
    location: str | None,
    as_json: bool,
    store_url: str | None,
    timeout: float,
) -> None:
    """Remove a cluster from the store; its job leaves the running server."""
    with answers():
        api, loc = _connect(url, location)
        store = open_store(store_url or loc.store_url)
        change = cluster_apply.delete(api, loc, store, identifier, timeout)
    data = {"identifier": identifier, "job": change.job, "file": change.where, "action": "deleted"}
    _emit(as_json, data, f"deleted: {identifier} (job {change.job}, {change.where})")


@clusters.command("list")
@server_options
def list_command(url: str, location: str | None, as_json: bool) -> None:
    """Every cluster the server serves, with its trigger, SLA and last run."""
    with answers():
        api, loc = _connect(url, location)
        jobs = api.jobs(loc)
        served = cluster_apply.cluster_jobs(jobs)
        last_runs = api.last_runs(loc, list(served))
    found = []
    for job in sorted(served.values(), key=lambda j: j.tags[CLUSTER_TAG]):
        last = run_summary(last_runs[job.name]) if job.name in last_runs else None
        found.append(
            {
                "identifier": job.tags[CLUSTER_TAG],
                "job": job.name,
                "trigger": job.metadata.get("trigger"),
                "sla": job.tags.get("exosphere/sla"),
                "last_run": last,
            }
        )
    invalid = [
        {"file": f, "errors": e} for f, e in sorted(cluster_apply.invalid_files(jobs).items())
    ]
    rows = [
        [
            "IDENTIFIER",
            "TRIGGER",
            "SLA",
            "LAST RUN",
            "STATUS",
            "ITEMS",
            "SUCCEEDED",
            "ROUTED",
            "FAILED",
        ]
    ]
    for c in found:
        last = c["last_run"] or dict.fromkeys(("run_id", "status", "created", *COUNTS))
        rows.append(
            [
                c["identifier"],
                dash(c["trigger"]),
                dash(c["sla"]),
                when(last["created"]),
                dash(last["status"]),
            ]
            + [dash(last[n]) for n in COUNTS]
        )
    human = table(rows) if found else f"no clusters in {loc.store_url}"
    for bad in invalid:
        human += f"\ninvalid: {bad['file']}\n  " + bad["errors"].replace("\n", "\n  ")
    _emit(as_json, {"store": loc.store_url, "clusters": found, "invalid": invalid}, human)


def _cluster_job(api: DagsterApi, loc: Location, identifier: str) -> JobInfo:
    """The job of the cluster whose identifier is ``identifier`` (not another one that has
    the same job name)."""
    job = cluster_apply.cluster_jobs(api.jobs(loc)).get(job_name_for(identifier))
    if job is None or not cluster_apply.same_cluster(job.tags[CLUSTER_TAG], identifier):
        held = f": job {job.name} is cluster '{job.tags[CLUSTER_TAG]}'" if job else ""
        raise ApiError(
            f"no cluster {identifier!r} on {api.url}{held} (see `exosphere clusters list`)"
        )
    return job


@clusters.command()
@click.argument("identifier")
@server_options
@click.option("--limit", default=10, show_default=True, help="How many recent runs.")
def status(identifier: str, url: str, location: str | None, as_json: bool, limit: int) -> None:
    """A cluster's recent runs: status, item counts, deadline, cost when known."""
    with answers():
        api, loc = _connect(url, location)
        job = _cluster_job(api, loc, identifier)
        runs = [run_summary(r) for r in api.runs(loc, job.name, limit)]
    head = (
        f"{job.tags['exosphere/cluster']}  (job {job.name}, sla {job.tags.get('exosphere/sla')}, "
        f"trigger {job.metadata.get('trigger')}, file {job.metadata.get('cluster file')})"
    )
    rows = [
        ["RUN", "STATUS", "CREATED", "ITEMS", "SUCCEEDED", "ROUTED", "FAILED", "DEADLINE", "COST"]
    ]
    for r in runs:
        cost = f"${r['cost_usd']:.4f}" if r["cost_usd"] is not None else "-"
        rows.append(
            [r["run_id"], r["status"], when(r["created"])]
            + [dash(r[n]) for n in COUNTS]
            + [when(r["deadline"]), cost]
        )
    human = head + "\n" + (table(rows) if runs else "no runs yet")
    data = {"identifier": job.tags["exosphere/cluster"], "job": job.name, "runs": runs}
    _emit(as_json, data, human)


@clusters.command()
@click.argument("identifier")
@server_options
@click.option("--input", "inputs", multiple=True, help="A JSON object (or list): run input items.")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 if it failed.")
def run(
    identifier: str,
    url: str,
    location: str | None,
    as_json: bool,
    inputs: tuple[str, ...],
    wait: bool,
) -> None:
    """Launch a cluster now; each input becomes a root item (default: one empty item)."""
    from exosphere_dagster.resolve.execution_plan import RunWindow
    from exosphere_dagster.translate.scheduling.triggers import run_config_for

    items = parse_inputs(inputs)
    with answers():
        api, loc = _connect(url, location)
        job = _cluster_job(api, loc, identifier)
        window = RunWindow.of_tags(job.tags)  # the rule resolve wrote into the job's tags
        tags = window.window_tags(datetime.now(UTC)) if window else {}  # as `exosphere run`
        run_id = api.launch(loc, job.name, run_config_for(items), tags)
        final = _wait(api, run_id) if wait else None
    data = {"run_id": run_id, "job": job.name, **({"run": run_summary(final)} if final else {})}
    human = f"launched {run_id} (job {job.name}, {len(items)} input item(s))"
    if final:
        human += f"\n{final.status}: " + ", ".join(
            f"{n} {dash(v)}" for n, v in zip(COUNTS, counts(final), strict=True)
        )
    _emit(as_json, data, human)
    if final and final.status != "SUCCESS":
        raise SystemExit(1)


def _wait(api: DagsterApi, run_id: str) -> RunInfo:
    while (current := api.run(run_id)).status not in FINISHED:
        time.sleep(1)
    return current


@clusters.command()
@click.argument("run_id")
@server_options
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing until the run ends; exit 1 if it failed."
)
def logs(run_id: str, url: str, location: str | None, as_json: bool, follow: bool) -> None:
    """A run's per-item records: item id, satellite, outcome, error (JSON lines with --json)."""
    with answers():
        api = DagsterApi(url)
        run_info = api.run(run_id)
        cursor: str | None = None
        while True:
            events, cursor, more = api.events(run_id, cursor)
            for event in events:
                for record in records(event):
                    click.echo(json.dumps(record.as_dict()) if as_json else record_line(record))
            if more:
                continue
            if not follow or run_info.status in FINISHED:
                break
            time.sleep(1)
            run_info = api.run(run_id)  # read once more after it ends: the last events
    if not as_json:
        summary = run_summary(run_info)
        counts = ", ".join(f"{n} {dash(summary[n])}" for n in COUNTS)
        click.echo(f"run {run_id}: {run_info.status} ({counts})")
    if follow and run_info.status != "SUCCESS":
        raise SystemExit(1)


@clusters.command()
@server_options
@click.option("--store", "store_url", default=None, help="Watch this store, not the server's.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
def watch(
    url: str, location: str | None, as_json: bool, store_url: str | None, interval: float
) -> None:
    """Reload the server's code location whenever its store changes (a sidecar beside a
    webserver, as `exosphere dev` does for its own)."""
    import threading

    from exosphere_dagster.entry.devserver import watch as watch_store

    with answers():
        api, loc = _connect(url, location)
        store = open_store(store_url or loc.store_url)
        watch_store(
            store,
            0,
            threading.Event(),
            interval,
            url=api.endpoint.removesuffix("/graphql"),
            location=loc.name,
            announce=f"watching {store.url} for {loc.name} at {api.url}",
        )

"""``exosphere clusters``: the cluster API over Dagster's GraphQL API (docs/cluster-api.md).

Every command needs only the webserver's URL (``--url``, ``$EXOSPHERE_URL``, default the local
``exosphere dev``): the code location publishes its clusters store, which ``apply`` and
``delete`` write with the user's own credentials before reloading the location.

Exit codes: 0 done; 1 refused (invalid file, unknown cluster or run, an error from the server)
or, with ``run --wait`` / ``logs --follow``, a run that did not succeed; 2 usage; 3 the
webserver or the store cannot be reached.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import click

from exosphere_dagster.cluster_apply import (
    CLUSTER_TAG,
    INVALID_TAG,
    Refused,
    apply,
    delete,
    prepare,
    stored_name,
)
from exosphere_dagster.cluster_store import STORE_URL_KEY, StoreError, store_from_url
from exosphere_dagster.graphql_api import (
    DEFAULT_URL,
    TERMINAL,
    ApiError,
    DagsterApi,
    Location,
    ServerUnreachable,
    entries,
    tags_of,
)
from exosphere_dagster.run_records import Record, cost, counts, records_of
from exosphere_dagster.tags import DEADLINE_TAG, ROLE_TAG, SLA_TAG, deadline_tags
from yaml_loader.errors import did_you_mean
from yaml_loader.ir import SLA_TIERS, job_name_for

EXIT_REFUSED, EXIT_UNREACHABLE = 1, 3
START_OP = "exosphere__start"  # ops.START_OP; the run config is triggers.run_config_for's


class Session:
    def __init__(self, url: str, as_json: bool, location: str | None) -> None:
        self.api = DagsterApi(url)
        self.as_json = as_json
        self._location_name = location
        self._location: Location | None = None

    @property
    def location(self) -> Location:
        if self._location is None:
            found = self.api.locations()
            if self._location_name:
                found = [x for x in found if x.name == self._location_name]
            if not found:
                which = f"'{self._location_name}'" if self._location_name else "serving clusters"
                raise Refused([f"no exosphere code location {which} at {self.api.url}"])
            if len(found) > 1:
                names = ", ".join(x.name for x in found)
                raise Refused(
                    [f"several exosphere code locations ({names}): pick one with --location"]
                )
            self._location = found[0]
        return self._location

    def store(self, override: str | None):
        url = override or self.location.store.get(STORE_URL_KEY)
        if not url:
            raise Refused(["the code location did not publish its store: give --store"])
        return store_from_url(url)

    def emit(self, data: Any, human: str) -> None:
        click.echo(json.dumps(data, indent=2) if self.as_json else human)


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command takes, and errors turned into messages and exit codes."""

    @click.option(
        "--url",
        envvar="EXOSPHERE_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="The Dagster webserver (its GraphQL API is URL/graphql).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("--location", default=None, help="The code location, if several serve clusters.")
    @functools.wraps(fn)
    def wrapper(url: str, as_json: bool, location: str | None, **kwargs: Any) -> None:
        try:
            fn(Session(url, as_json, location), **kwargs)
        except Refused as exc:
            for line in exc.lines:
                click.echo(line, err=True)
            sys.exit(EXIT_REFUSED)
        except ApiError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_REFUSED)
        except (ServerUnreachable, StoreError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)

    return wrapper


@click.group()
def clusters() -> None:
    """The cluster API: apply, delete, list, status, logs and run clusters on a Dagster server."""


@clusters.command("apply")
@click.argument("files", nargs=-1, required=True)
@click.option("--store", default=None, help="Write here instead of the location's own store.")
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for the reload.")
@command
def apply_command(session: Session, files: tuple[str, ...], store: str | None, timeout: float):
    """Validate cluster files (YAML, or Python: docs/python-api.md), store them, reload."""
    prepared = prepare(list(files))  # refuses before anything is written
    target = session.store(store)
    changes = apply(session.api, session.location, target, prepared, timeout)
    lines = [
        f"{c.action}: {c.cluster.identifier} -> {target.display(c.name)} (job {c.cluster.job})"
        for c in changes
    ]
    session.emit([c.as_dict(target) for c in changes], "\n".join(lines))


@clusters.command("delete")
@click.argument("identifier")
@click.option("--store", default=None, help="Delete from here instead of the location's store.")
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for the reload.")
@command
def delete_command(session: Session, identifier: str, store: str | None, timeout: float):
    """Remove a cluster (or a file of the store, e.g. a broken one) and reload."""
    target = session.store(store)
    done = delete(session.api, session.location, target, identifier, timeout)
    session.emit(done, f"deleted: {identifier} ({done['file']})")


@clusters.command("list")
@command
def list_command(session: Session) -> None:
    """Every cluster: identifier, trigger, SLA, last run and its item counts."""
    rows, broken = [], []
    for job in session.api.jobs(session.location):
        tags, meta = tags_of(job), entries(job["metadataEntries"])
        if tags.get(INVALID_TAG):
            broken.append({"file": meta.get("cluster file"), "errors": meta.get("errors", "")})
        elif CLUSTER_TAG in tags and tags.get(ROLE_TAG) != "sla-breach":
            last = job["runs"][0] if job["runs"] else None
            rows.append({**_cluster(session, job), "last_run": _run(last) if last else None})
    table = [("IDENTIFIER", "TRIGGER", "SLA", "LAST RUN", "STATUS", "IN", "OK", "ROUTED", "FAILED")]
    for r in rows:
        run = r["last_run"] or {}
        table.append(
            (
                r["identifier"],
                r["trigger"],
                r["sla"],
                run.get("run_id", "-"),
                run.get("status", "-"),
                *_counts_text(run),
            )
        )
    human = _table(table) if rows else f"no clusters in {session.location.store.get(STORE_URL_KEY)}"
    for b in broken:
        human += f"\ninvalid file {b['file']} (skipped):\n" + _indent(b["errors"])
    session.emit({"clusters": rows, "invalid": broken}, human)


@clusters.command("status")
@click.argument("identifier")
@click.option("--limit", default=10, show_default=True, help="How many recent runs.")
@command
def status_command(session: Session, identifier: str, limit: int) -> None:
    """A cluster's recent runs: status, items in / succeeded / routed / failed, deadline, cost."""
    job = _find_cluster(session, identifier)
    runs = [_run(r) for r in session.api.runs(job["name"], limit)]
    info = {**_cluster(session, job), "runs": runs}
    head = (
        f"cluster {info['identifier']} (job {info['job']}, file {info['file']}): "
        f"trigger {info['trigger']}, sla {info['sla']}"
    )
    table = [("RUN", "STATUS", "STARTED", "IN", "OK", "ROUTED", "FAILED", "DEADLINE", "COST")]
    for r in runs:
        price = "-" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}"
        table.append(
            (
                r["run_id"],
                r["status"],
                _time(r["started"]),
                *_counts_text(r),
                (r["deadline"] or "-")[:19],
                price,
            )
        )
    session.emit(info, head + "\n" + (_table(table) if runs else "no runs yet"))


@clusters.command("logs")
@click.argument("run_id")
@click.option(
    "--follow", is_flag=True, help="Keep printing until the run ends; exit 1 unless it succeeded."
)
@click.option(
    "--interval", default=1.0, show_default=True, help="Seconds between polls with --follow."
)
@command
def logs_command(session: Session, run_id: str, follow: bool, interval: float) -> None:
    """A run's per-item records: item id, satellite, outcome, message or error."""
    run = session.api.run(run_id)
    if run is None:
        raise Refused([f"no run {run_id} at {session.api.url}"])
    cursor, finished = None, False
    while True:
        events, cursor, more = session.api.events(run_id, cursor)
        for event in events:
            for record in records_of(event):
                click.echo(
                    json.dumps(record.as_dict()) if session.as_json else _record_line(record)
                )
        if more:
            continue
        if not follow or finished:
            break
        run = session.api.run(run_id) or run
        finished = run["status"] in TERMINAL  # one more read after the end, then stop
        if not finished:
            time.sleep(interval)
    if not session.as_json:
        click.echo(_run_line(_run(run)))
    if follow and run["status"] != "SUCCESS":
        sys.exit(EXIT_REFUSED)


@clusters.command("run")
@click.argument("identifier")
@click.option(
    "--input", "inputs", multiple=True, help="A JSON object: one run input item (repeatable)."
)
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 unless it succeeded.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to --wait at most.")
@command
def run_command(
    session: Session, identifier: str, inputs: tuple[str, ...], wait: bool, timeout: float
):
    """Launch a run of a cluster now, its inputs becoming root items (as `exosphere run`)."""
    items = [_json_object(text) for text in inputs] or [{}]
    job = _find_cluster(session, identifier)
    tier = SLA_TIERS.get(tags_of(job).get(SLA_TAG, ""))
    tags = deadline_tags(tier, datetime.now(UTC)) if tier else {}  # deadline = now + SLA
    run_id = session.api.launch(session.location, job["name"], run_config(items), tags)
    if not wait:
        session.emit({"run_id": run_id, "job": job["name"]}, run_id)
        return
    deadline = time.monotonic() + timeout
    while (run := session.api.run(run_id)) is None or run["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise Refused([f"run {run_id} still {run and run['status']} after {timeout:.0f}s"])
        time.sleep(1.0)
    session.emit(_run(run), _run_line(_run(run)))
    if run["status"] != "SUCCESS":
        sys.exit(EXIT_REFUSED)


def run_config(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The start op's inputs, as ``triggers.run_config_for`` (which imports Dagster) makes them."""
    return {"ops": {START_OP: {"config": {"inputs": inputs}}}}


# -- helpers ---------------------------------------------------------------------------------
def _find_cluster(session: Session, identifier: str) -> dict[str, Any]:
    jobs = session.api.jobs(session.location)
    wanted = job_name_for(identifier)
    for job in jobs:
        if job["name"] == wanted and CLUSTER_TAG in tags_of(job):
            return job
    known = [tags_of(j)[CLUSTER_TAG] for j in jobs if CLUSTER_TAG in tags_of(j)]
    hint = did_you_mean(identifier, known)
    raise Refused(
        [f"no cluster '{identifier}' at {session.api.url}" + (f" ({hint})" if hint else "")]
    )


def _cluster(session: Session, job: dict[str, Any]) -> dict[str, Any]:
    tags, meta = tags_of(job), entries(job["metadataEntries"])
    name = stored_name(session.location, job)
    url = session.location.store.get(STORE_URL_KEY, "")
    return {
        "identifier": tags[CLUSTER_TAG],
        "job": job["name"],
        "trigger": meta.get("trigger", "-"),
        "sla": meta.get("sla") or tags.get(SLA_TAG, "-"),
        "file": f"{url.rstrip('/')}/{name}" if name and url else meta.get("cluster file"),
    }


def _run(run: dict[str, Any]) -> dict[str, Any]:
    tags = tags_of(run)
    return {
        "run_id": run["runId"],
        "status": run["status"],
        "created": run.get("creationTime"),
        "started": run.get("startTime"),
        "ended": run.get("endTime"),
        **counts(tags),
        "deadline": tags.get(DEADLINE_TAG),
        "cost_usd": cost(tags),
    }


def _counts_text(run: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        "-" if run.get(k) is None else str(run[k])
        for k in ("items", "succeeded", "routed", "failed")
    )


def _run_line(run: dict[str, Any]) -> str:
    items, ok, routed, failed = _counts_text(run)
    return f"run {run['run_id']}: {run['status']}; items {items}: {ok} succeeded, {routed} routed, {failed} failed"


def _record_line(r: Record) -> str:
    detail = ": ".join(x for x in (r.message, r.error) if x)
    return (
        f"{r.time[11:19]}  {r.satellite:<20} {r.item or '-':<28} {r.outcome:<8} {detail}".rstrip()
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc}): {text!r}", param_hint="--input") from None
    if not isinstance(value, dict):
        raise click.BadParameter(
            f"expected a JSON object, got {type(value).__name__}: {text!r}", param_hint="--input"
        )
    return value


def _time(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: Iterable[tuple[str, ...]]) -> str:
    rows = [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())

"""``apply`` and ``delete``: change the clusters store, then make the running code location
show the change, or put the store back.

``apply`` validates every file first with the loader ``exosphere validate`` uses (YAML files,
and Python files through ``load_python_clusters``); a refused file changes nothing. Each cluster
is stored under its job name (``tour/hello`` -> ``tour__hello.yml``), or under the file the
server already builds it from, so applying an identifier again replaces it. After writing, the
code location is reloaded and the server's job list is read until each job is served; a file
the server refuses (its ``invalid__`` stand-in job, e.g. a satellite only the caller has) is
rolled back, and so is a job that never appears.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from exosphere_dagster.build.catalog import load_catalog
from exosphere_dagster.entry.cluster_store import ClusterStore, StoreError, store_name
from exosphere_dagster.entry.graphql_api import ApiError, DagsterApi, JobInfo, Location
from yaml_loader import ConfigError
from yaml_loader.ir import job_name_for

CLUSTER_TAG = "exosphere/cluster"  # build/tags.py (no Dagster import in the CLI's hot path)
RELOAD_AGAIN_S = 10.0


@dataclass(frozen=True)
class Change:
    identifier: str
    job: str
    name: str  # the store file
    where: str  # the store file as the server names it
    before: bytes | None
    after: bytes | None

    @property
    def action(self) -> str:
        if self.after is None:
            return "deleted"
        if self.before is None:
            return "created"
        return "unchanged" if self.before == self.after else "updated"


def cluster_jobs(jobs: Iterable[JobInfo]) -> dict[str, JobInfo]:
    """The jobs that are clusters (not SLA alerts, invalid-file stand-ins or asset jobs)."""
    return {
        j.name: j
        for j in jobs
        if CLUSTER_TAG in j.tags and j.tags.get("exosphere/role") != "sla-breach"
    }


def invalid_files(jobs: Iterable[JobInfo]) -> dict[str, str]:
    """File (as the server names it) -> its errors, for every file the server refused."""
    return {
        j.metadata.get("cluster file", j.name): j.metadata.get("errors", j.description)
        for j in jobs
        if j.tags.get("exosphere/invalid")
    }


def owner(store: ClusterStore, names: Iterable[str], job: JobInfo | None) -> str | None:
    """The store file the server builds ``job`` from (its ``cluster file`` is that file, or
    the file's mirror for an S3 store), if it is in the store."""
    served = job.metadata.get("cluster file", "") if job else ""
    found = [n for n in names if served and (served == store.where(n) or served.endswith("/" + n))]
    return max(found, key=len) if found else None


Validated = tuple[str, str, bytes]  # identifier, job name, the YAML to store


def validate(paths: list[str]) -> tuple[list[Validated], list[ConfigError]]:
    """(identifier, job name, YAML bytes) of every cluster in ``paths``, or the errors."""
    catalog = load_catalog(list(paths), log=False)
    if catalog.broken:
        return [], catalog.errors
    if not catalog.plans:
        where = ", ".join(paths)
        return [], [
            ConfigError(
                where, 1, 1, (), "no cluster file found", hint="name .yml, .yaml or .py files"
            )
        ]
    found = []
    for plan in catalog.plans:
        text = catalog.generated.get(plan.job_name)
        data = text.encode() if text is not None else Path(plan.file).read_bytes()
        found.append((plan.identifier, plan.job_name, data))
    return found, []


def apply(
    api: DagsterApi,
    location: Location,
    store: ClusterStore,
    clusters: list[Validated],
    timeout: float,
) -> list[Change]:
    """Write what ``validate`` accepted, reload, check; ApiError (store put back) if refused."""
    served = cluster_jobs(api.jobs(location))
    names = store.list()
    changes = []
    for identifier, job, data in clusters:
        name = owner(store, names, served.get(job)) or store_name(job)
        before = store.read(name) if name in names else None
        changes.append(Change(identifier, job, name, store.where(name), before, data))
    _commit(api, location, store, [c for c in changes if c.action != "unchanged"], timeout)
    return changes


def delete(
    api: DagsterApi, location: Location, store: ClusterStore, identifier: str, timeout: float
) -> Change:
    job = job_name_for(identifier)
    names = store.list()
    name = owner(store, names, cluster_jobs(api.jobs(location)).get(job))
    if name is None and store_name(job) in names:
        name = store_name(job)
    if name is None:
        raise ApiError(f"no cluster {identifier!r} in {store.url} (see `exosphere clusters list`)")
    change = Change(identifier, job, name, store.where(name), store.read(name), None)
    _commit(api, location, store, [change], timeout)
    return change


def _commit(
    api: DagsterApi, location: Location, store: ClusterStore, changes: list[Change], timeout: float
) -> None:
    """Write ``changes`` and wait for the server to show them; on any failure (a refused file,
    a write or the server failing midway, Ctrl-C) put every file back as it was."""
    if not changes:
        return
    present = {c.job: c.where for c in changes if c.after is not None}
    absent = {c.job for c in changes if c.after is None}
    try:
        for change in changes:
            _put(store, change.name, change.after)
        problems = settle(api, location, present, absent, timeout)
    except BaseException:
        _rollback(api, location, store, changes)
        raise
    if problems:
        _rollback(api, location, store, changes)
        raise ApiError("the store was put back as it was:\n" + "\n".join(problems))


def _put(store: ClusterStore, name: str, data: bytes | None) -> None:
    if data is None:
        store.delete(name)
    else:
        store.write(name, data)


def _rollback(
    api: DagsterApi, location: Location, store: ClusterStore, changes: list[Change]
) -> None:
    """Best effort: the error that caused the rollback is the one reported."""
    for change in changes:
        with contextlib.suppress(StoreError):
            _put(store, change.name, change.before)
    with contextlib.suppress(ApiError):
        api.reload(location)


def settle(
    api: DagsterApi, location: Location, present: dict[str, str], absent: set[str], timeout: float
) -> list[str]:
    """Reload, then read the job list until every job of ``present`` (job -> its file as the
    server names it) is served and none of ``absent`` is. Returns the problems: a file the
    server refused, or what is still not so after ``timeout`` seconds. Reloads again every
    10 s: a watcher's reload that began before the write may land after ours."""
    api.reload(location)
    start = last_reload = time.monotonic()
    while True:
        jobs = api.jobs(location)
        served = {j.name for j in jobs}
        refused = invalid_files(jobs)
        problems = [
            f"the server refused {w}:\n{refused[w]}" for w in present.values() if w in refused
        ]
        if problems:
            return problems
        waiting = [f"{j} is not served" for j in present if j not in served]
        waiting += [f"{j} is still served" for j in absent if j in served]
        if not waiting:
            return []
        now = time.monotonic()
        if now - start > timeout:
            return [f"after {timeout:g}s: " + "; ".join(waiting)]
        if now - last_reload > RELOAD_AGAIN_S:
            api.reload(location)
            last_reload = now
        time.sleep(0.5)

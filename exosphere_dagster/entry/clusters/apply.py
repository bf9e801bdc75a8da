"""``apply`` and ``delete``: change the clusters store, then make the running code location
show the change, or put the store back; never silently replace or lose another cluster.

``apply`` validates every file first with the loader ``exosphere validate`` uses (YAML files,
and Python files through ``load_python_clusters``); a refused file changes nothing. Each cluster
is stored under its file name (``yaml_loader.identity.file_name_for``: ``tour/hello`` ->
``tour__hello.yml``), or under the file the server already builds it from. A different
identifier that maps to a job or a file the store and the server already hold for another
cluster (``xx_yy/zz`` after ``xx-yy/zz``) is refused, naming both; ``delete X`` removes only the
cluster whose identifier is X.

Every write is a compare-and-swap on the version read before (``ClusterStore.swap``), and so is
every rollback: a rollback never overwrites a write it did not make. A change counts as served
when the server's job carries the SHA-256 of the bytes written (job metadata
``cluster file sha256``), not merely its name. A file the server refuses (its ``invalid__``
stand-in job, seen again after a fresh reload), a job that never appears, or a file another
writer replaced meanwhile, ends the call with exit 1, the store put back where it still holds
this call's writes (settle.py waits and checks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from exosphere_dagster.entry.clusters.graphql import ApiError, DagsterApi, JobInfo, Location
from exosphere_dagster.entry.clusters.settle import (
    CLUSTER_TAG,
    ROLE_TAG,
    cluster_jobs,
    invalid_files,
    settle,
)
from exosphere_dagster.entry.clusters.store import ClusterStore, StoreConflict, StoreError
from exosphere_dagster.resolve.catalog import load_catalog
from exosphere_dagster.resolve.content import content_hash
from yaml_loader import ClusterPlan, ConfigError, ConfigErrors
from yaml_loader.identity import breach_job_name, claims, file_name_for, job_name_for
from yaml_loader.source import read_yaml_text


@dataclass(frozen=True)
class Change:
    identifier: str
    job: str
    name: str  # the store file
    where: str  # the store file as the server names it
    before: bytes | None
    after: bytes | None
    version: str | None = None  # the store's version of ``before`` (None: no file)

    @property
    def action(self) -> str:
        if self.after is None:
            return "deleted"
        if self.before is None:
            return "created"
        return "unchanged" if self.before == self.after else "updated"

    @property
    def digest(self) -> str | None:
        return None if self.after is None else content_hash(self.after)


@dataclass(frozen=True)
class Validated:
    """A cluster ``validate`` accepted: its plan and the YAML bytes to store."""

    plan: ClusterPlan
    data: bytes

    @property
    def identifier(self) -> str:
        return self.plan.identifier

    @property
    def job(self) -> str:
        return self.plan.job_name


def owner(store: ClusterStore, names: Iterable[str], job: JobInfo | None) -> str | None:
    """The store file the server builds ``job`` from (its ``cluster file`` is that file, or
    the file's mirror for an S3 store), if it is in the store."""
    served = job.metadata.get("cluster file", "") if job else ""
    found = [n for n in names if served and (served == store.where(n) or served.endswith("/" + n))]
    return max(found, key=len) if found else None


def validate(paths: list[str]) -> tuple[list[Validated], list[ConfigError]]:
    """Every cluster in ``paths`` with the YAML to store, or the errors (two clusters of the
    call whose names collide are refused here, by the loader's identity check)."""
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
        found.append(Validated(plan, data))
    return found, []


def same_cluster(a: str, b: str) -> bool:
    return a.removeprefix("cluster/") == b.removeprefix("cluster/")


def stored_identifier(data: bytes, where: str) -> str | None:
    """The identifier a stored file declares, if it can be read (through the loader's own
    YAML reader: size and alias limits included)."""
    try:
        parsed, _ = read_yaml_text(data.decode("utf-8", "replace"), where)
    except ConfigErrors:
        return None
    cluster = parsed.get("cluster") if isinstance(parsed, dict) else None
    identifier = cluster.get("identifier") if isinstance(cluster, dict) else None
    return identifier if isinstance(identifier, str) else None


def held_jobs(jobs: Iterable[JobInfo]) -> dict[str, tuple[str, str]]:
    """Job name -> (identifier, file) of every job the server builds from a cluster: the
    cluster's own job and its SLA-breach alert job."""
    jobs = list(jobs)
    held = {
        name: (job.tags[CLUSTER_TAG], job.metadata.get("cluster file", "?"))
        for name, job in cluster_jobs(jobs).items()
    }
    suffix = breach_job_name("")
    for job in jobs:
        of = held.get(job.name.removesuffix(suffix))
        if job.tags.get(ROLE_TAG) == "sla-breach" and job.name.endswith(suffix) and of:
            held[job.name] = of
    return held


def clashes(cluster: Validated, change: Change, held: dict[str, tuple[str, str]]) -> list[str]:
    """Why storing ``cluster`` as ``change`` would replace or hide another cluster."""
    new = f"cluster '{cluster.identifier}' ({cluster.plan.file})"
    found = []
    for job in [c.name for c in claims(cluster.plan) if c.namespace == "job"]:
        other, file = held.get(job, (cluster.identifier, ""))
        if not same_cluster(other, cluster.identifier):
            found.append(
                f"{new} makes job '{job}', which the server already has for cluster "
                f"'{other}' ({file})"
            )
    stored = stored_identifier(change.before, change.where) if change.before else None
    if stored and not same_cluster(stored, cluster.identifier):
        found.append(f"{new} would be stored as {change.where}, which holds cluster '{stored}'")
    return found


def apply(
    api: DagsterApi,
    location: Location,
    store: ClusterStore,
    clusters: list[Validated],
    timeout: float,
) -> list[Change]:
    """Write what ``validate`` accepted, reload, check; ApiError (store put back) if refused."""
    jobs = api.jobs(location)
    served, held = cluster_jobs(jobs), held_jobs(jobs)
    names = store.list()
    changes, refused = [], []
    for cluster in clusters:
        name = owner(store, names, served.get(cluster.job)) or file_name_for(cluster.identifier)
        before, version = store.read_version(name)
        change = Change(
            cluster.identifier, cluster.job, name, store.where(name), before, cluster.data, version
        )
        refused += clashes(cluster, change, held)
        changes.append(change)
    if refused:
        raise ApiError(
            "refused; nothing was changed:\n"
            + "\n".join(refused)
            + "\nhint: identifiers that differ only in '-' vs '_' or in where '/' and '__' fall "
            "make the same job and file: rename the new cluster, or delete the other first"
        )
    _commit(api, location, store, [c for c in changes if c.action != "unchanged"], timeout)
    return changes


__all__ = ["Change", "Validated", "apply", "cluster_jobs", "delete", "invalid_files", "validate"]


def delete(
    api: DagsterApi, location: Location, store: ClusterStore, identifier: str, timeout: float
) -> Change:
    """Remove the cluster whose identifier is exactly ``identifier``; a different cluster with
    the same job or file name is named and left alone."""
    job = job_name_for(identifier)
    current = cluster_jobs(api.jobs(location)).get(job)
    if current is not None and not same_cluster(current.tags[CLUSTER_TAG], identifier):
        other = current.tags[CLUSTER_TAG]
        raise ApiError(
            f"no cluster '{identifier}': job {job} is cluster '{other}' "
            f"({current.metadata.get('cluster file')}); nothing was deleted "
            f"(to delete that one: exosphere clusters delete {other})"
        )
    names = store.list()
    name = owner(store, names, current)
    if name is None and file_name_for(identifier) in names:
        name = file_name_for(identifier)
    before, version = store.read_version(name) if name else (None, None)
    if name is None or before is None:
        raise ApiError(f"no cluster {identifier!r} in {store.url} (see `exosphere clusters list`)")
    stored = stored_identifier(before, store.where(name))
    if stored is None or not same_cluster(stored, identifier):
        holds = f"cluster '{stored}'" if stored else "no readable cluster identifier"
        raise ApiError(
            f"no cluster '{identifier}': {store.where(name)} holds {holds}; nothing was deleted"
        )
    change = Change(identifier, job, name, store.where(name), before, None, version)
    _commit(api, location, store, [change], timeout)
    return change


def _commit(
    api: DagsterApi, location: Location, store: ClusterStore, changes: list[Change], timeout: float
) -> None:
    """Write ``changes`` (each a compare-and-swap on the version read before) and wait for the
    server to serve them; on any failure (a refused file, another writer, the server failing
    midway, Ctrl-C) put back every file that still holds what this call wrote."""
    if not changes:
        return
    done: list[tuple[Change, str | None]] = []  # a change and the version it wrote
    try:
        for change in changes:
            done.append((change, store.swap(change.name, change.after, change.version)))
        problems = settle(api, location, store, done, timeout)
    except BaseException as exc:
        notes = _rollback(api, location, store, done)
        if notes and isinstance(exc, ApiError | StoreError):
            raise type(exc)("\n".join([str(exc), *notes])) from None
        raise
    if problems:
        notes = _rollback(api, location, store, done)
        head = "the store was put back as it was" if not notes else "the store was put back"
        raise ApiError("\n".join([f"{head}:", *problems, *notes]))


def _rollback(
    api: DagsterApi,
    location: Location,
    store: ClusterStore,
    done: list[tuple[Change, str | None]],
) -> list[str]:
    """Put back each file whose version is still the one this call wrote; the others were
    changed by another writer since, and keep their version. Returns what was not put back
    (the error that caused the rollback is the one reported)."""
    notes = []
    for change, written in reversed(done):
        try:
            store.swap(change.name, change.before, written)
        except StoreConflict as exc:
            notes.append(f"not put back: {exc}")
        except StoreError as exc:
            notes.append(f"not put back: {change.where}: {exc}")
    with contextlib.suppress(ApiError):
        api.reload(location)
    return notes

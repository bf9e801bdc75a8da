"""``exosphere clusters apply|delete``: validate, write the store, reload, check the server.

``apply`` validates every file first with the loader ``exosphere validate`` uses and refuses
with located errors before anything is written. A cluster is stored under its job name
(``tour/hello`` -> ``tour__hello.yml``), or under the file that already holds its identifier, so
applying the same identifier again replaces it. After the write the code location is reloaded
and ``apply`` waits until the location has loaded this state of the store (the token it
publishes) and the job is there; if the server refuses a file (its own satellites differ from
the ones the CLI validated with), the files are put back as they were and ``apply`` fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from exosphere_dagster.catalog import load_catalog, registry_with_plugins
from exosphere_dagster.cluster_store import (
    STORE_ROOT_KEY,
    STORE_TOKEN_KEY,
    STORE_URL_KEY,
    ClusterStore,
    store_name,
)
from exosphere_dagster.graphql_api import ApiError, DagsterApi, Location, entries, tags_of
from satellite_ops.errors import RegistryError
from yaml_loader import ConfigErrors
from yaml_loader.errors import did_you_mean
from yaml_loader.ir import job_name_for
from yaml_loader.load import YAML_SUFFIXES

INVALID_TAG = "exosphere/invalid"  # on a broken file's placeholder job (definitions.py)
CLUSTER_TAG = "exosphere/cluster"


class Refused(Exception):
    """Nothing (or nothing lasting) was changed; ``lines`` say why, one problem per entry."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class Prepared:
    identifier: str
    job: str
    text: bytes
    source: str  # the user's file


@dataclass
class Change:
    cluster: Prepared
    name: str  # the file in the store
    before: bytes | None
    action: str  # created | updated | unchanged

    def as_dict(self, store: ClusterStore) -> dict[str, str]:
        c = self.cluster
        file = store.display(self.name)
        return {"identifier": c.identifier, "job": c.job, "file": file, "action": self.action}


def prepare(paths: list[str]) -> list[Prepared]:
    """Every cluster of ``paths`` (YAML files or folders, Python files), validated; all problems
    of all files raised together as Refused."""
    yaml_paths = [p for p in paths if not p.endswith(".py")]
    errors: list[str] = []
    prepared: list[Prepared] = []
    if yaml_paths:
        catalog = load_catalog(list(yaml_paths), log=False)
        errors += [str(e) for e in catalog.errors]
        for plan in catalog.plans:
            text = Path(plan.file).read_bytes()
            prepared.append(Prepared(plan.identifier, plan.job_name, text, plan.file))
    for path in (p for p in paths if p.endswith(".py")):
        errors += _prepare_python(path, prepared)
    seen: dict[str, str] = {}
    for p in prepared:
        if p.job in seen and seen[p.job] != p.source:
            errors.append(
                f"{p.source}:1:1: cluster.identifier: cluster '{p.identifier}' is also in "
                f"{seen[p.job]}\n    hint: apply one file per identifier"
            )
        seen.setdefault(p.job, p.source)
    if errors:
        raise Refused(errors)
    return prepared


def _prepare_python(path: str, prepared: list[Prepared]) -> list[str]:
    """Clusters written in Python (docs/python-api.md): each planned by the same loader, its
    errors at the Python line that wrote the value."""
    try:
        from yaml_loader.python_api import load_python_clusters
    except ImportError as exc:  # pragma: no cover - the package ships it
        return [f"{path}:1:1: <document>: clusters in Python are not available here ({exc})"]
    try:
        registry = registry_with_plugins()
        clusters = load_python_clusters(path)
    except RegistryError as exc:
        return [f"<satellite plugins>:1:1: <document>: {exc}"]
    except ConfigErrors as exc:
        return [str(e) for e in exc.errors]
    if not clusters:
        hint = "assign it to a module-level name (or a module-level list)"
        return [f"{path}:1:1: <document>: no Cluster(...) at module level\n    hint: {hint}"]
    errors = []
    for cluster in clusters:
        try:
            plan = cluster.plan(registry)
            text = cluster.to_yaml().encode()
        except ConfigErrors as exc:
            errors += [str(e) for e in exc.errors]
            continue
        prepared.append(Prepared(plan.identifier, plan.job_name, text, path))
    return errors


def stored_name(location: Location, job: dict[str, Any]) -> str | None:
    """The store file a job was loaded from (a broken file's placeholder job too), from its
    "cluster file" metadata and the store the location published."""
    file = entries(job["metadataEntries"]).get("cluster file") or ""
    for base in (location.store.get(k, "").rstrip("/") for k in (STORE_ROOT_KEY, STORE_URL_KEY)):
        if base and file.startswith(base + "/"):
            return str(PurePosixPath(file[len(base) + 1 :]))
    return None


def stored_names(location: Location, jobs: list[dict[str, Any]]) -> dict[str, str]:
    """Job name -> the store file it was loaded from."""
    return {j["name"]: name for j in jobs if (name := stored_name(location, j))}


def apply(
    api: DagsterApi,
    location: Location,
    store: ClusterStore,
    prepared: list[Prepared],
    timeout: float,
) -> list[Change]:
    owners = stored_names(location, api.jobs(location))
    changes = []
    for cluster in prepared:
        name = owners.get(cluster.job) or store_name(cluster.identifier)
        before = store.read(name)
        action = "unchanged" if before == cluster.text else "updated" if before else "created"
        if action != "unchanged":
            store.write(name, cluster.text)
        changes.append(Change(cluster, name, before, action))
    try:
        jobs = settle(api, location, store, timeout)
        refused = _server_errors(location, jobs, changes)
    except BaseException:
        _restore(store, changes)
        raise
    if refused:
        _restore(store, changes)
        settle(api, location, store, timeout)
        raise Refused([*refused, "the server refused the cluster(s): the store is as it was"])
    return changes


def _server_errors(
    location: Location, jobs: list[dict[str, Any]], changes: list[Change]
) -> list[str]:
    by_name = {j["name"]: j for j in jobs}
    owners = stored_names(location, jobs)
    errors = []
    for change in changes:
        broken = [
            j for j in jobs if tags_of(j).get(INVALID_TAG) and owners.get(j["name"]) == change.name
        ]
        if broken:
            errors += [entries(j["metadataEntries"]).get("errors", j["name"]) for j in broken]
        elif change.cluster.job not in by_name:
            errors.append(f"{change.cluster.identifier}: job {change.cluster.job} did not appear")
    return errors


def _restore(store: ClusterStore, changes: list[Change]) -> None:
    for change in changes:
        if change.action == "unchanged":
            continue
        if change.before is None:
            store.delete(change.name)
        else:
            store.write(change.name, change.before)


def delete(
    api: DagsterApi, location: Location, store: ClusterStore, target: str, timeout: float
) -> dict[str, Any]:
    """Remove a cluster (by identifier, or a store file by name: a broken one too)."""
    jobs = api.jobs(location)
    owners = stored_names(location, jobs)
    if target.endswith(YAML_SUFFIXES):
        name, job = target, next((j for j, n in owners.items() if n == target), None)
    else:
        job = job_name_for(target)
        name = owners.get(job) or store_name(target)
    if not store.delete(name):
        known = [tags_of(j)[CLUSTER_TAG] for j in jobs if CLUSTER_TAG in tags_of(j)]
        hint = did_you_mean(target, known)
        raise Refused([f"no cluster '{target}' in {store.url}" + (f" ({hint})" if hint else "")])
    jobs = settle(api, location, store, timeout)
    if job and any(j["name"] == job for j in jobs):
        raise Refused([f"{store.display(name)} was deleted but job {job} is still served"])
    return {"identifier": target, "job": job, "file": store.display(name), "action": "deleted"}


def settle(
    api: DagsterApi, location: Location, store: ClusterStore, timeout: float
) -> list[dict[str, Any]]:
    """Reload the location until it has loaded what the store holds now (the token it
    publishes equals the store's); return its jobs. Another reload beside this one (``exosphere
    dev``'s watcher) is harmless: every reload loads the store as it is then."""
    deadline = time.monotonic() + timeout
    wanted, reloaded = store.change_token(), 0.0
    while True:
        if time.monotonic() - reloaded > 20:  # again if a reload raced another writer
            api.reload(location.name)
            reloaded = time.monotonic()
        current = next((x for x in api.locations() if x.name == location.name), None)
        if current is not None and current.store.get(STORE_TOKEN_KEY) == wanted:
            location.store = current.store
            return api.jobs(location)
        if time.monotonic() > deadline:
            raise ApiError(
                f"code location {location.name} did not load the store's new state within "
                f"{timeout:.0f}s (is another writer changing {store.url}?)"
            )
        time.sleep(0.5)
        wanted = store.change_token()

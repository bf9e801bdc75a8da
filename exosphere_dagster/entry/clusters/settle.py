"""After ``apply`` or ``delete`` wrote the store: reload the code location and read its jobs
until each change is served, or say why not.

A written cluster counts as served when its job carries the SHA-256 of the bytes written
(metadata ``cluster file sha256``, resolve/content.py): a job of the same name built from other
content (older, or another writer's) does not count. A refusal (the file's ``invalid__``
stand-in job) counts once a reload made after it was first seen shows it again: a reload that
began before the write can land late with an older copy of the store. A change another writer
replaced meanwhile (the store no longer holds the version written) ends the wait at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from exosphere_dagster.entry.clusters.graphql import DagsterApi, JobInfo, Location
from exosphere_dagster.entry.clusters.store import ClusterStore
from exosphere_dagster.resolve.content import CONTENT_HASH_KEY
from exosphere_dagster.resolve.tags import CLUSTER_TAG, ROLE_TAG

if TYPE_CHECKING:
    from exosphere_dagster.entry.clusters.apply import Change

RELOAD_AGAIN_S = 10.0


def cluster_jobs(jobs: Iterable[JobInfo]) -> dict[str, JobInfo]:
    """The jobs that are clusters (not SLA alerts, invalid-file stand-ins or asset jobs)."""
    return {
        j.name: j for j in jobs if CLUSTER_TAG in j.tags and j.tags.get(ROLE_TAG) != "sla-breach"
    }


def invalid_files(jobs: Iterable[JobInfo]) -> dict[str, str]:
    """File (as the server names it) -> its errors, for every file the server refused."""
    return {
        j.metadata.get("cluster file", j.name): j.metadata.get("errors", j.description)
        for j in jobs
        if j.tags.get("exosphere/invalid")
    }


def _state(change: Change, jobs: dict[str, JobInfo], refused: dict[str, str]) -> str | None:
    """What still keeps ``change`` from being served (None: served as written)."""
    job = jobs.get(change.job)
    if change.after is None:
        return f"{change.job} is still served" if job is not None else None
    if job is not None and job.metadata.get(CONTENT_HASH_KEY) == change.digest:
        return None
    if change.where in refused:
        return f"the server refused {change.where}:\n{refused[change.where]}"
    if job is None:
        return f"{change.job} is not served"
    return f"{change.job} is served from other content than {change.where} was given"


def settle(
    api: DagsterApi,
    location: Location,
    store: ClusterStore,
    done: list[tuple[Change, str | None]],
    timeout: float,
) -> list[str]:
    """Reload, then read the job list until every change of ``done`` (each with the store
    version it wrote) is served as written. Returns the problems: a file the server refused, a
    file another writer replaced, or what is still not so after ``timeout`` seconds. Reloads
    again every 10 s: a watcher's reload that began before the write may land after ours."""
    api.reload(location)
    start = last_reload = time.monotonic()
    refusal_seen = False
    while True:
        jobs = api.jobs(location)
        refused = invalid_files(jobs)
        by_name = {j.name: j for j in jobs}
        waiting = [s for c, _ in done if (s := _state(c, by_name, refused))]
        if not waiting:
            return []
        replaced = [c.where for c, written in done if store.read_version(c.name)[1] != written]
        if replaced:
            return [
                f"another writer changed {w} meanwhile (not this call's write)" for w in replaced
            ]
        refusals = [s for s in waiting if s.startswith("the server refused")]
        now = time.monotonic()
        if refusals and refusal_seen:
            return refusals
        if refusals or now - last_reload > RELOAD_AGAIN_S:
            refusal_seen = bool(refusals)
            api.reload(location)
            last_reload = now
            continue
        if now - start > timeout:
            return [f"after {timeout:g}s: " + "; ".join(waiting)]
        time.sleep(0.5)

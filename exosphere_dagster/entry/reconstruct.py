"""Jobs rebuilt from one cluster file in any process: what the multiprocess executor, re-execution
and ``exosphere run`` need, without loading the whole clusters folder."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from dagster import JobDefinition
from dagster._core.definitions.reconstruct import ReconstructableJob, build_reconstructable_job

from exosphere_dagster.resolve.catalog import plan_file
from exosphere_dagster.translate.job import build_job


@cache
def job_for_file(path: str) -> JobDefinition:
    cluster, registry = plan_file(path)
    return build_job(cluster, registry)


def reconstructable_job(path: str | Path) -> ReconstructableJob:
    return build_reconstructable_job(
        "exosphere_dagster.entry.reconstruct",
        "job_for_file",
        reconstructable_args=(str(Path(path).resolve()),),
    )

"""Jobs rebuilt from one cluster file in any process: what the multiprocess executor, re-execution
and ``exosphere run`` need, without loading the whole clusters folder."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from dagster import JobDefinition
from dagster._core.definitions.reconstruct import ReconstructableJob, build_reconstructable_job

from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.translate.job import build_job
from yaml_loader import load, plan


@cache
def job_for_file(path: str) -> JobDefinition:
    registry = registry_with_plugins()
    return build_job(plan(load(path), registry), registry)


def reconstructable_job(path: str | Path) -> ReconstructableJob:
    return build_reconstructable_job(
        "exosphere_dagster.entry.reconstruct",
        "job_for_file",
        reconstructable_args=(str(Path(path).resolve()),),
    )

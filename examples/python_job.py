"""A hand-written Dagster job that uses exosphere satellites as ops.

    REPORTS_WEBHOOK=http://127.0.0.1:8080/hook dagster job execute -f examples/python_job.py -j notify_reports

Each object the ``reports`` op returns goes through ``call-webhook`` (per-item retries,
checkpoints, typed config in the Launchpad); the op returns what the webhook answered.
"""

from __future__ import annotations

import os

from dagster import Definitions, job, op

from exosphere_dagster import satellite_as_op

notify = satellite_as_op(
    "satellite/exospherehost/call-webhook",
    name="notify",
    config={
        "url": os.environ.get("REPORTS_WEBHOOK", "http://127.0.0.1:8080/hook"),
        "method": "POST",
        "headers": [{"Authorization": "Bearer ${{ secrets.HOOK_TOKEN }}"}],
        "body": {"report": "${{ run.input.name }}", "pages": "${{ run.input.pages }}"},
    },
    secrets={"HOOK_TOKEN": "env:HOOK_TOKEN"},
    retries=2,
)


@op
def reports() -> list[dict]:
    """Stand-in for any upstream op: the objects to send."""
    return [{"name": "q1.pdf", "pages": 12}, {"name": "q2.pdf", "pages": 9}]


@job
def notify_reports() -> None:
    notify(reports())


defs = Definitions(jobs=[notify_reports])

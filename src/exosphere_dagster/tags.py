"""Run and op tag keys the product sets (namespaced constants, like dagster-k8s/config)."""

from __future__ import annotations

from pathlib import Path

from yaml_loader.ir import ClusterPlan

PRIORITY_TAG = "dagster/priority"
MAX_RUNTIME_TAG = "dagster/max_runtime"
SLA_TAG = "exosphere/sla"
CLUSTER_TAG = "exosphere/cluster"
DEADLINE_TAG = "exosphere/deadline"
TRIGGER_TIME_TAG = "exosphere/trigger_time"
SATELLITE_TAG = "exosphere/satellite"
CLUSTER_FILE_TAG = "exosphere/cluster_file"


def sla_run_tags(plan: ClusterPlan) -> dict[str, str]:
    """Tags every run of a cluster carries, however it was launched."""
    return {
        **plan.tags,
        PRIORITY_TAG: str(plan.sla.priority),
        MAX_RUNTIME_TAG: str(plan.sla.seconds),
        SLA_TAG: plan.sla.name,
        CLUSTER_TAG: plan.identifier,
        CLUSTER_FILE_TAG: str(Path(plan.file).resolve()),
    }

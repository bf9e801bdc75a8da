"""Run and op tag keys the product sets (namespaced constants, like dagster-k8s/config)."""

from __future__ import annotations

from datetime import UTC, datetime

from yaml_loader.tiers import TIER_NAMES as TIER_NAMES  # re-exported: runs are found by tier tag

PRIORITY_TAG = "dagster/priority"
MAX_RUNTIME_TAG = "dagster/max_runtime"
SLA_TAG = "exosphere/sla"
SLA_SECONDS_TAG = "exosphere/sla_seconds"  # RunWindow: trigger time + this = the deadline
URGENT_WITHIN_TAG = "exosphere/urgent_within_seconds"  # RunWindow: the urgency threshold
CLUSTER_TAG = "exosphere/cluster"
DEADLINE_TAG = "exosphere/deadline"
TRIGGER_TIME_TAG = "exosphere/trigger_time"
SATELLITE_TAG = "exosphere/satellite"
CLUSTER_FILE_TAG = "exosphere/cluster_file"
BASE_PRIORITY_TAG = "exosphere/base_priority"  # the tier priority before a deadline boost
PRIORITY_REASON_TAG = "exosphere/priority_reason"
ROLE_TAG = "exosphere/role"  # "sla-breach" on the alert runs that report an SLA breach
BREACH_OF_TAG = "exosphere/sla_breach_of"  # on an alert run: the run that missed its SLA


def parse_time(value: str | None) -> datetime | None:
    """An ISO timestamp tag as an aware datetime (naive values are UTC); None if unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

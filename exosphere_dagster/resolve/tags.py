"""Run and op tag keys the product sets (namespaced constants, like dagster-k8s/config)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from yaml_loader.tiers import TIER_NAMES as TIER_NAMES  # re-exported: runs are found by tier tag
from yaml_loader.tiers import TIERS, SlaTier

PRIORITY_TAG = "dagster/priority"
MAX_RUNTIME_TAG = "dagster/max_runtime"
SLA_TAG = "exosphere/sla"
CLUSTER_TAG = "exosphere/cluster"
DEADLINE_TAG = "exosphere/deadline"
TRIGGER_TIME_TAG = "exosphere/trigger_time"
SATELLITE_TAG = "exosphere/satellite"
CLUSTER_FILE_TAG = "exosphere/cluster_file"
BASE_PRIORITY_TAG = "exosphere/base_priority"  # the tier priority before a deadline boost
PRIORITY_REASON_TAG = "exosphere/priority_reason"
ROLE_TAG = "exosphere/role"  # "sla-breach" on the alert runs that report an SLA breach
BREACH_OF_TAG = "exosphere/sla_breach_of"  # on an alert run: the run that missed its SLA


def tier_of(tags: Mapping[str, str]) -> SlaTier | None:
    return TIERS.get(tags.get(SLA_TAG, ""))


def parse_time(value: str | None) -> datetime | None:
    """An ISO timestamp tag as an aware datetime (naive values are UTC); None if unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def deadline_tags(tier: SlaTier, when: datetime) -> dict[str, str]:
    """``exosphere/trigger_time`` and ``exosphere/deadline`` (= trigger time + SLA), in UTC."""
    start = when if when.tzinfo else when.replace(tzinfo=UTC)
    return {
        TRIGGER_TIME_TAG: start.astimezone(UTC).isoformat(),
        DEADLINE_TAG: tier.deadline(start).isoformat(),
    }


def run_window(tags: Mapping[str, str], when: datetime) -> dict[str, str]:
    """The trigger time and deadline tags of a run of a job carrying ``tags`` (its
    ``exosphere/sla``) that starts at ``when``; none for a job without a tier. What the entry
    points stamp on a launch, so that they look no tier up themselves."""
    tier = tier_of(tags)
    return deadline_tags(tier, when) if tier else {}

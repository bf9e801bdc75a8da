"""The template scope: the roots a ``${{ }}`` expression may start with and the fields each
offers. One description, used by the planner (load-time checks), the runtime (the values it
renders with), the failure branch and log records."""

from __future__ import annotations

ROOTS = ("satellites", "secrets", "cluster", "run", "failure")
CLUSTER_FIELDS = ("identifier", "title", "description", "sla", "trigger")
RUN_FIELDS = ("id", "input", "started_at", "trigger_time", "deadline")
FAILURE_FIELDS = ("error", "satellite", "attempts", "item_id", "error_type")

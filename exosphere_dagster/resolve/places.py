"""How the asset catalog names a place outside the clusters: by its service and where it is
(``s3 bucket › prefix``, ``webhook api.example.com › v1 › hook``, ``PagerDuty``, ``New Relic``,
``CloudWatch Logs group › stream``), since Dagster's lineage graph titles an asset by the last
part of its key. The key is ``["external", <service>, <title>]``: one asset per place, shared
by every cluster that names it.

A title holds no ``/``: the UI splits asset keys on it (an asset page then loses its upstream
and downstream assets), so the parts of a path are joined with `` › ``.

For a hosted service the host says which account or region, the path is the service's own API:
the default host is the service's name alone, another host follows it (``New Relic
log-api.eu.newrelic.com``). A bring-your-own endpoint is titled ``<kind> <path>``.
"""

from __future__ import annotations

from satellite_ops.endpoints import Endpoint

# kind -> (what people call the service, the hosts that need no mention)
SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pagerduty": ("PagerDuty", ("events.pagerduty.com",)),
    "newrelic": ("New Relic", ("log-api.newrelic.com",)),
    "kusto": ("Azure Data Explorer", ()),
    "otlp": ("OpenTelemetry", ()),
}
HTTP = ("http", "https")
STEP = " › "


def _joined(parts: tuple[str, ...]) -> str:
    """``("bucket", "a/b")`` -> ``bucket › a › b``: every ``/`` becomes a step."""
    return STEP.join(p for part in parts for p in part.split("/") if p)


def place_folder(endpoint: Endpoint) -> str:
    """The middle key part: the service (``s3``, ``webhook``, ``pagerduty``, ...)."""
    if endpoint.system == "s3":
        return "s3"
    if endpoint.system == "file":
        return "folder"
    return endpoint.kind or endpoint.system


def place_title(endpoint: Endpoint) -> str:
    """What the catalog and the lineage graph call the place."""
    where = _joined(endpoint.path)
    if endpoint.system == "s3":
        return f"s3 {where}"
    if endpoint.system == "file":
        return f"folder {where}"
    if endpoint.system == "cloudwatch-logs":
        return f"CloudWatch Logs {where}"
    if endpoint.system in HTTP and endpoint.kind in SERVICES:
        name, default_hosts = SERVICES[endpoint.kind]
        host = endpoint.path[0]
        return name if host in default_hosts else f"{name} {host}"
    return f"{endpoint.kind or endpoint.system} {where}"

"""Trigger a PagerDuty incident through the Events API v2, one per failed item.

The dedup key is derived from the cluster and the item id, so retries and re-runs update
the same incident instead of paging twice. One request per runtime attempt: the runtime retries
the item (``retries``, ``delay``, the Events API's Retry-After).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, ValidationError

from satellite_ops import (
    FatalError,
    SatelliteConfig,
    SatelliteContext,
    declares_endpoints,
    describe_validation_error,
    http_endpoint,
    satellite,
)
from satellite_ops.helpers import build_request, parse_body, send_async, stable_key

IDENTIFIER = "satellite/exospherehost/send-pagerduty-alert"
EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
WHAT = "PagerDuty Events API"
SUMMARY_LIMIT = 1024  # Events API v2: payload.summary is at most 1024 characters


class PagerDutyAlertConfig(SatelliteConfig):
    """Which PagerDuty service to page and how the alert is labelled."""

    pagerduty_api_key: SecretStr = Field(
        description="Events API v2 integration (routing) key of the service."
    )
    pagerduty_service_id: str | None = Field(
        None, description="Service id, kept in custom_details for reference."
    )
    severity: Literal["critical", "error", "warning", "info"] = Field(
        "error", description="Severity of the alert."
    )
    source: str | None = Field(
        None, description="Where the problem is (payload.source); default: the cluster."
    )
    component: str | None = Field(None, description="Component of the source (optional).")
    group: str | None = Field(None, description="Logical grouping of components (optional).")
    endpoint: str = Field(EVENTS_URL, description="Events API v2 enqueue URL.")
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one request, in seconds.")


class PagerDutyAlertInput(SatelliteConfig):
    """The alert text, plus optional details and dedup key."""

    message: str = Field(description="Alert summary (truncated to 1024 characters).")
    details: dict[str, Any] = Field(
        default_factory=dict, description="Extra custom_details merged into the event."
    )
    dedup_key: str | None = Field(None, description="Override of the derived dedup key.")


def build_event(
    cfg: PagerDutyAlertConfig, data: PagerDutyAlertInput, context: SatelliteContext
) -> dict[str, Any]:
    """The Events API v2 trigger event for one item."""
    cluster, item_id = context.cluster, context.item_id
    dedup_key = data.dedup_key or (
        stable_key(cluster, item_id) if item_id else stable_key(cluster, data.message)
    )
    summary = " ".join(data.message.split()) or "exosphere alert"
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 3] + "..."
    details: dict[str, Any] = {
        "cluster": cluster or None,
        "run-id": context.run_id or None,
        "item-id": item_id or None,
        "satellite": context.satellite or None,
        "service-id": cfg.pagerduty_service_id,
        **data.details,
    }
    payload: dict[str, Any] = {
        "summary": summary,
        "source": cfg.source or cluster or "exosphere-dagster",
        "severity": cfg.severity,
        "custom_details": {k: v for k, v in details.items() if v is not None},
    }
    for name in ("component", "group"):
        if getattr(cfg, name):
            payload[name] = getattr(cfg, name)
    return {
        "routing_key": cfg.pagerduty_api_key.get_secret_value(),
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
    }


@declares_endpoints(lambda cfg: [http_endpoint("sink", cfg.get("endpoint"), kind="pagerduty")])
@satellite(IDENTIFIER, config=PagerDutyAlertConfig, input_model=PagerDutyAlertInput)
async def send_pagerduty_alert(
    config: PagerDutyAlertConfig, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """Trigger a PagerDuty alert whose summary is the input's ``message``.

    202 -> success; 429/5xx raise RetryableError (with Retry-After) for the runtime to retry;
    400 (bad event or key) is fatal.
    """
    try:
        data = PagerDutyAlertInput.model_validate(dict(input))
    except ValidationError as exc:
        raise FatalError(f"send-pagerduty-alert input: {describe_validation_error(exc)}") from None
    event = build_event(config, data, context)
    async with httpx.AsyncClient(timeout=config.timeout_seconds) as client:
        response = await send_async(
            client,
            build_request(client, WHAT, "POST", config.endpoint, json=event),
            what=WHAT,
            secrets=[event["routing_key"]],
        )
    answer = parse_body(response)
    dedup_key = answer.get("dedup_key") if isinstance(answer, dict) else None
    context.log.info("PagerDuty accepted alert %s", event["dedup_key"])
    return [{"status": "success", "dedup_key": dedup_key or event["dedup_key"]}]

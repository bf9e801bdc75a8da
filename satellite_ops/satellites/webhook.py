"""Call an HTTP endpoint once per item attempt, with an idempotency key.

One request per runtime attempt: the runtime retries the item (``retries``, ``delay``, the
server's Retry-After), so an item with ``retries: 2`` reaches a failing endpoint 3 times.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator

from satellite_ops import (
    SatelliteConfig,
    SatelliteContext,
    SecretKeyMapList,
    SingleKeyMapList,
    declares_endpoints,
    http_endpoint,
    satellite,
)
from satellite_ops.helpers import (
    build_request,
    header_values,
    parse_body,
    safe_url,
    send_async,
    stable_key,
)

IDENTIFIER = "satellite/exospherehost/call-webhook"
IDEMPOTENCY_HEADER = "Idempotency-Key"

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class CallWebhookConfig(SatelliteConfig):
    """The request to send; retries are the satellite's ``retries``/``delay``, not config."""

    url: str = Field(description="URL to call (http or https).", min_length=1)
    method: Method = Field("POST", description="HTTP method.")
    headers: SecretKeyMapList = Field(
        default_factory=dict,
        description="Request headers, as a list of single-key maps or a mapping; values are "
        "treated as secrets (never logged, never in errors).",
    )
    params: SingleKeyMapList = Field(
        default_factory=dict, description="Query string parameters, as a mapping."
    )
    body: Any = Field(
        None,
        description="Request body: any JSON value is sent as JSON; a string is sent as text.",
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one attempt, in seconds.")
    expected_status: int | list[int] | None = Field(
        None,
        description="Status code(s) that count as success; default: any 2xx.",
    )
    idempotency_key: bool = Field(
        True,
        description="Send an Idempotency-Key header derived from the item id and the satellite.",
    )
    follow_redirects: bool = Field(True, description="Follow 3xx redirects.")
    verify_tls: bool = Field(True, description="Verify the server's TLS certificate.")

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if "${{" not in value and not value.lower().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    def is_success(self, status: int) -> bool:
        """Whether a final status counts as success under ``expected-status``."""
        if self.expected_status is None:
            return 200 <= status < 300
        expected = self.expected_status
        return status in (expected if isinstance(expected, list) else [expected])


def _request_headers(cfg: CallWebhookConfig, context: SatelliteContext) -> dict[str, str]:
    headers = {name: value.get_secret_value() for name, value in cfg.headers.items()}
    has_key = any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in headers)
    if cfg.idempotency_key and context.item_id and not has_key:  # a log sink has no item
        headers[IDEMPOTENCY_HEADER] = stable_key(context.satellite, context.item_id)
    return headers


def _body_arguments(body: Any, headers: Mapping[str, str]) -> dict[str, Any]:
    if body is None:
        return {}
    if isinstance(body, str | bytes):
        return {"content": body}
    has_type = any(name.lower() == "content-type" for name in headers)
    content = json.dumps(body, default=str).encode()
    if not has_type:
        return {"content": content, "headers": {"Content-Type": "application/json"}}
    return {"content": content}


@declares_endpoints(lambda cfg: [http_endpoint("sink", cfg.get("url"))])
@satellite(IDENTIFIER, config=CallWebhookConfig)
async def call_webhook(
    config: CallWebhookConfig, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """Send one HTTP request per item and return its status, headers and parsed body.

    One attempt: 408/429/5xx and connection errors raise RetryableError (with the server's
    Retry-After) for the runtime to retry; another unexpected status is fatal.
    """
    headers = _request_headers(config, context)
    body_args = _body_arguments(config.body, headers)
    extra_headers = body_args.pop("headers", {})
    secrets = [*header_values(headers), *context.secrets.values()]
    what = "webhook"

    async with httpx.AsyncClient(
        timeout=config.timeout_seconds,
        follow_redirects=config.follow_redirects,
        verify=config.verify_tls,
    ) as client:
        request = build_request(
            client,
            what,
            config.method,
            config.url,
            headers={**extra_headers, **headers},
            params=config.params or None,
            **body_args,
        )
        response = await send_async(
            client, request, what=what, secrets=secrets, ok=config.is_success
        )

    context.log.info("%s %s answered %d", config.method, safe_url(config.url), response.status_code)
    return [
        {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": parse_body(response),
        }
    ]

"""Webhook, New Relic and PagerDuty satellites against a recording HTTP server on loopback."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import ValidationError

from satellite_ops import FatalError, RetryableError
from satellite_ops.helpers.http_client import excerpt, parse_retry_after, safe_url
from satellite_ops.helpers.log_sinks import PartialDelivery
from satellite_ops.satellites.new_relic import (
    NewRelicLogsConfig,
    send_log_records,
    send_logs_to_new_relic,
)
from satellite_ops.satellites.pagerduty import send_pagerduty_alert
from satellite_ops.satellites.webhook import CallWebhookConfig, call_webhook
from satellite_ops.testing import CallError, CapturedLog, call

SECRET_TOKEN = "tok-SUPERSECRET-0123456789"
ITEM = {"item_id": "item-42", "run_id": "run-7", "cluster": "aikin/strucutred-pdfs"}


# --- pure helpers -------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=20), usegmt=True), now=now) == 20
    )
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=20), usegmt=True), now=now) == 0
    )
    assert parse_retry_after("-3") == 0.0  # never a negative wait
    for unreadable in ("soon", "nan", "inf", "", None):
        assert parse_retry_after(unreadable) is None


def test_safe_url_and_excerpt() -> None:
    assert (
        safe_url("https://user:pw@api.test:8443/v1/x?token=abc#f") == "https://api.test:8443/v1/x"
    )
    text = excerpt(f"bad token {SECRET_TOKEN}\n\n" + "x" * 1000, [SECRET_TOKEN], limit=40)
    assert SECRET_TOKEN not in text and text.startswith("bad token *** x") and text.endswith("...")


# --- webhook --------------------------------------------------------------------------------


def _webhook_config(url: str, **extra: object) -> dict:
    return {
        "url": url + "/v1/financial-reports?key=query-secret",
        "headers": [{"Authorization": f"Bearer {SECRET_TOKEN}"}, {"X-Trace": "abc"}],
        "body": [{"data": {"revenue": 12.5}, "file-path": "sec/a.pdf"}],
        **extra,
    }


@pytest.mark.integration
def test_webhook_posts_json_with_idempotency_key(http_recorder) -> None:
    http_recorder.script([(201, {"X-Id": "9"}, {"id": 9})])
    log = CapturedLog()
    (result,) = call(call_webhook, _webhook_config(http_recorder.url), {}, log=log, **ITEM)
    assert result == {"status": 201, "headers": result["headers"], "body": {"id": 9}}
    assert result["headers"]["x-id"] == "9"
    (request,) = http_recorder.requests
    assert request.method == "POST"
    assert request.path == "/v1/financial-reports?key=query-secret"
    assert request.header("Authorization") == f"Bearer {SECRET_TOKEN}"
    assert request.header("Content-Type") == "application/json"
    assert request.json == [{"data": {"revenue": 12.5}, "file-path": "sec/a.pdf"}]
    expected_key = hashlib.sha256(b"call-webhook\x1fitem-42").hexdigest()  # node id, item id
    assert request.header("Idempotency-Key") == expected_key
    assert log.messages == [f"POST {http_recorder.url}/v1/financial-reports answered 201"]
    assert not any(SECRET_TOKEN in m or "query-secret" in m for m in log.messages)


@pytest.mark.integration
@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_webhook_makes_one_request_and_hands_retry_after_to_the_runtime(
    http_recorder, status
) -> None:
    http_recorder.script([(status, {"Retry-After": "7"}, "busy")])
    with pytest.raises(RetryableError) as caught:
        call(call_webhook, _webhook_config(http_recorder.url), {}, **ITEM)
    assert caught.value.retry_after == 7
    assert str(status) in str(caught.value) and SECRET_TOKEN not in str(caught.value)
    assert len(http_recorder.requests) == 1  # the runtime retries the item, not the client


@pytest.mark.integration
def test_webhook_reads_a_retry_after_date(http_recorder) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    http_recorder.script([(429, {"Retry-After": format_datetime(when, usegmt=True)}, "")])
    with pytest.raises(RetryableError) as caught:
        call(call_webhook, _webhook_config(http_recorder.url), {}, **ITEM)
    assert 60 < caught.value.retry_after <= 120  # second resolution, minus the time it took


def test_webhook_has_no_retry_knobs_of_its_own() -> None:
    """Retries are the satellite's ``retries``/``delay``: the old in-call knobs are refused."""
    for knob in ("max-attempts", "max-retry-wait-seconds"):
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            CallWebhookConfig.model_validate({"url": "https://e.com/h", knob: 2})


@pytest.mark.integration
def test_webhook_400_is_fatal_without_secrets(http_recorder) -> None:
    http_recorder.script([(400, {}, {"error": "bad body", "echo": f"Bearer {SECRET_TOKEN}"})])
    with pytest.raises(FatalError) as caught:
        call(call_webhook, _webhook_config(http_recorder.url), {}, **ITEM)
    text = str(caught.value)
    assert "400" in text and "bad body" in text
    assert SECRET_TOKEN not in text and "query-secret" not in text
    assert len(http_recorder.requests) == 1  # not retried


@pytest.mark.integration
def test_webhook_connection_refused_is_retryable() -> None:
    config = {"url": "http://127.0.0.1:9/hook", "headers": {"Authorization": SECRET_TOKEN}}
    with pytest.raises(RetryableError) as caught:
        call(call_webhook, config, {}, **ITEM)
    text = str(caught.value)
    assert "http://127.0.0.1:9/hook failed: ConnectError" in text and SECRET_TOKEN not in text
    assert caught.value.retry_after is None


@pytest.mark.integration
def test_webhook_expected_status_wins_over_retrying(http_recorder) -> None:
    http_recorder.script([(503, {}, {"queued": True})])
    config = {"url": http_recorder.url + "/q", "expected-status": 503}
    (result,) = call(call_webhook, config, {}, **ITEM)
    assert result["status"] == 503 and result["body"] == {"queued": True}


@pytest.mark.integration
def test_webhook_expected_status_and_get(http_recorder) -> None:
    http_recorder.script([(404, {}, {"found": False})])
    config = {
        "url": http_recorder.url + "/x",
        "method": "get",
        "expected-status": [200, 404],
        "idempotency-key": False,
    }
    (result,) = call(call_webhook, config, {}, **ITEM)
    assert result["status"] == 404
    (request,) = http_recorder.requests
    assert request.method == "GET" and request.body == b""
    assert request.header("Idempotency-Key") is None  # turned off


def test_webhook_config_errors_name_the_key_without_the_secret() -> None:
    config = {"url": "ftp://e.com/h", "headers": {"Authorization": SECRET_TOKEN}, "methd": "GET"}
    with pytest.raises(CallError) as caught:
        call(call_webhook, config, {})
    text = str(caught.value)
    assert "url: Value error, url must start with http:// or https://" in text
    assert "methd: Extra inputs are not permitted" in text and SECRET_TOKEN not in text


# --- New Relic ------------------------------------------------------------------------------


def _nr_config(url: str, **extra: object) -> dict:
    return {
        "account-id": "1234567",
        "api-key": "NRAK-SECRETKEY123",
        "application-id": "app-9",
        "log-level": "info",
        "endpoint": url + "/log/v1",
        **extra,
    }


def _record(level: str, message: str, ts: float = 1_700_000_000.5) -> dict:
    return {
        "timestamp": ts,
        "level": level,
        "cluster": "aikin/strucutred-pdfs",
        "run_id": "run-7",
        "satellite": "parse-pdf-with-docling",
        "item_id": "item-42",
        "message": message,
    }


def _sink(config: dict, records: list[dict]) -> None:
    """Call the log sink as the runtime's log forwarder does: validated config, records."""
    send_log_records(NewRelicLogsConfig.model_validate(config), records)


@pytest.mark.integration
def test_new_relic_detailed_format_gzip(http_recorder) -> None:
    http_recorder.script([(202, {}, {"requestId": "r"})])
    records = [_record("debug", "noise"), _record("INFO", "parsed"), _record("error", "failed")]
    _sink(_nr_config(http_recorder.url), records)
    (request,) = http_recorder.requests
    assert request.method == "POST" and request.path == "/log/v1"
    assert request.header("Api-Key") == "NRAK-SECRETKEY123"
    assert request.header("Content-Encoding") == "gzip"
    assert request.header("Content-Type") == "application/json"
    assert json.loads(gzip.decompress(request.raw_body)) == request.json
    (block,) = request.json
    assert block["common"]["attributes"]["account.id"] == "1234567"
    assert block["common"]["attributes"]["application.id"] == "app-9"
    assert [log["message"] for log in block["logs"]] == ["parsed", "failed"]
    first = block["logs"][0]
    assert first["timestamp"] == 1_700_000_000_500
    assert first["attributes"] == {
        "level": "info",
        "cluster": "aikin/strucutred-pdfs",
        "run_id": "run-7",
        "satellite": "parse-pdf-with-docling",
        "item_id": "item-42",
    }


@pytest.mark.integration
def test_new_relic_batches_and_filters(http_recorder) -> None:
    records = [_record("warning", f"m{i}") for i in range(5)] + [_record("info", "skip")]
    _sink(_nr_config(http_recorder.url, **{"batch-size": 2, "log-level": "warning"}), records)
    sizes = [len(r.json[0]["logs"]) for r in http_recorder.requests]
    assert sizes == [2, 2, 1]
    _sink(_nr_config(http_recorder.url, **{"log-level": "error"}), records)
    assert len(http_recorder.requests) == 3  # nothing at error level: nothing sent


@pytest.mark.integration
def test_new_relic_sink_makes_one_request_per_payload(http_recorder) -> None:
    """The log forwarder retries a sink's batch (tests/exosphere_dagster/test_log_sinks.py):
    the sink itself sends once, passing Retry-After on, and a 403 is fatal."""
    http_recorder.script([(503, {"Retry-After": "7"}, "")])
    with pytest.raises(RetryableError) as retryable:
        _sink(_nr_config(http_recorder.url), [_record("info", "x")])
    assert retryable.value.retry_after == 7 and len(http_recorder.requests) == 1
    http_recorder.script([(403, {}, "invalid key NRAK-SECRETKEY123")])
    with pytest.raises(FatalError) as caught:
        _sink(_nr_config(http_recorder.url), [_record("info", "x")])
    assert "403" in str(caught.value) and "NRAK-SECRETKEY123" not in str(caught.value)
    assert len(http_recorder.requests) == 2


@pytest.mark.integration
def test_new_relic_sink_reports_a_partial_delivery(http_recorder) -> None:
    """Three payloads of 2 records; the second fails: the first two records (and the debug
    record between them, below the level) count as delivered, so a retry starts after them."""
    http_recorder.script([(202, {}, {}), (500, {}, "boom")])
    records = [_record("info", "a"), _record("debug", "skip"), _record("info", "b")]
    records += [_record("info", f"c{i}") for i in range(4)]
    config = _nr_config(http_recorder.url, **{"batch-size": 2})
    with pytest.raises(PartialDelivery) as caught:
        _sink(config, records)
    assert caught.value.delivered == 3 and isinstance(caught.value.cause, RetryableError)
    assert [len(r.json[0]["logs"]) for r in http_recorder.requests] == [2, 2]


@pytest.mark.integration
def test_new_relic_as_item_satellite_makes_one_request(http_recorder) -> None:
    http_recorder.reset(default=(503, {"Retry-After": "5"}, "down"))
    with pytest.raises(RetryableError) as caught:
        call(send_logs_to_new_relic, _nr_config(http_recorder.url), {"message": "m"}, **ITEM)
    assert caught.value.retry_after == 5
    assert len(http_recorder.requests) == 1  # not max-attempts (3): the runtime retries items


@pytest.mark.integration
def test_new_relic_as_item_satellite(http_recorder) -> None:
    config, data = _nr_config(http_recorder.url), {"message": "hello", "level": "warning"}
    out = call(send_logs_to_new_relic, config, data, node_id="audit", **ITEM)
    assert out == [{"sent": 1}]
    (log,) = http_recorder.requests[0].json[0]["logs"]
    assert log["message"] == "hello"
    assert log["attributes"] == {
        "level": "warning",
        "cluster": "aikin/strucutred-pdfs",
        "run_id": "run-7",
        "satellite": "audit",
        "item_id": "item-42",
    }


# --- PagerDuty ------------------------------------------------------------------------------


def _pd_config(url: str, **extra: object) -> dict:
    return {
        "pagerduty-api-key": "R0UTINGKEY0123456789abcdef012345",
        "pagerduty-service-id": "PSVC123",
        "endpoint": url + "/v2/enqueue",
        **extra,
    }


@pytest.mark.integration
def test_pagerduty_event_shape(http_recorder) -> None:
    http_recorder.script(
        [(202, {}, {"status": "success", "message": "Event processed", "dedup_key": "srv-key"})]
    )
    message = "Cluster failed " + "x" * 2000
    (result,) = call(
        send_pagerduty_alert, _pd_config(http_recorder.url), {"message": message}, **ITEM
    )
    assert result == {"status": "success", "dedup_key": "srv-key"}
    (request,) = http_recorder.requests
    assert request.path == "/v2/enqueue"
    event = request.json
    expected_dedup = hashlib.sha256(b"aikin/strucutred-pdfs\x1fitem-42").hexdigest()
    assert event["routing_key"] == "R0UTINGKEY0123456789abcdef012345"
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == expected_dedup
    payload = event["payload"]
    assert len(payload["summary"]) == 1024 and payload["summary"].endswith("...")
    assert payload["source"] == "aikin/strucutred-pdfs"
    assert payload["severity"] == "error"
    assert payload["custom_details"]["service-id"] == "PSVC123"
    assert payload["custom_details"]["item-id"] == "item-42"


@pytest.mark.integration
def test_pagerduty_dedup_key_is_stable(http_recorder) -> None:
    config = _pd_config(http_recorder.url, severity="critical")
    for _ in range(2):
        call(send_pagerduty_alert, config, {"message": "boom"}, **ITEM)
    first, second = (r.json for r in http_recorder.requests)
    assert first["dedup_key"] == second["dedup_key"]
    assert first["payload"]["severity"] == "critical"


@pytest.mark.integration
def test_pagerduty_makes_one_request_and_hands_retry_after_to_the_runtime(http_recorder) -> None:
    http_recorder.script([(429, {"Retry-After": "30"}, {"status": "throttled"})])
    with pytest.raises(RetryableError) as caught:
        call(send_pagerduty_alert, _pd_config(http_recorder.url), {"message": "m"}, **ITEM)
    assert caught.value.retry_after == 30 and len(http_recorder.requests) == 1
    assert "R0UTINGKEY0123456789abcdef012345" not in str(caught.value)


@pytest.mark.integration
def test_pagerduty_400_is_fatal(http_recorder) -> None:
    http_recorder.script(
        [
            (
                400,
                {},
                {
                    "status": "invalid event",
                    "errors": ["routing_key R0UTINGKEY0123456789abcdef012345"],
                },
            )
        ]
    )
    with pytest.raises(FatalError) as caught:
        call(send_pagerduty_alert, _pd_config(http_recorder.url), {"message": "m"}, **ITEM)
    assert "400" in str(caught.value) and "invalid event" in str(caught.value)
    assert "R0UTINGKEY0123456789abcdef012345" not in str(caught.value)


def test_pagerduty_needs_a_message() -> None:
    """The runtime hands over the input as written: the satellite checks it itself (fatal), as
    the helper does against the declared ``input_model``."""
    config = _pd_config("http://127.0.0.1:9")
    with pytest.raises(FatalError, match="send-pagerduty-alert input: message: Field required"):
        call(send_pagerduty_alert, config, {"messgae": "typo"}, check_input=False)
    with pytest.raises(CallError, match="send-pagerduty-alert input: message: Field required"):
        call(send_pagerduty_alert, config, {})


def test_new_relic_payloads_stay_under_one_megabyte() -> None:
    import base64
    import os

    from satellite_ops.satellites.new_relic import (
        MAX_PAYLOAD_BYTES,
        NewRelicLogsConfig,
        _compressed_chunks,
    )

    config = NewRelicLogsConfig.model_validate(_nr_config("http://127.0.0.1:9"))
    records = [_record("info", base64.b64encode(os.urandom(300_000)).decode()) for _ in range(4)]
    chunks = list(_compressed_chunks(config, records))
    assert sum(count for count, _ in chunks) == 4 and len(chunks) > 1
    assert all(len(body) <= MAX_PAYLOAD_BYTES for _, body in chunks)

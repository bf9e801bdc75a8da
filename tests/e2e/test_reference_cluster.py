"""The reference cluster (examples/structured-pdfs-fixed.yml), run end to end on a SQLite
instance: S3 on a moto server, the webhook, New Relic and PagerDuty on a recording HTTP server,
docling and DeepSeek replaced by bring-your-own fakes. The file is read from the examples
folder and changed only where running locally requires it (each change listed in LOCAL_CHANGES).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from exosphere_dagster.entry.launch import run_cluster_file
from satellite_ops.helpers.http_client import stable_key

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "examples" / "structured-pdfs-fixed.yml"
BUCKET = "aikin-financial-reports"
FAILURE_BUCKET = "aikin-financial-reports-failure"
SECRET_NAMES = (
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "API_BEARER_TOKEN",
    "NEW_RELIC_ACCOUNT_ID",
    "NEW_RELIC_API_KEY",
    "NEW_RELIC_APPLICATION_ID",
    "FAILURE_S3_AWS_ACCESS_KEY",
    "FAILURE_S3_AWS_SECRET_KEY",
    "PAGERDUTY_API_KEY",
    "PAGERDUTY_SERVICE_ID",
)
GOOD = {
    "sec/2024/q1/acme.pdf": {"company": "ACME", "quarter": "Q1", "year": "2024", "revenue": "100"},
    "sec/2024/q1/globex.pdf": {"company": "Globex", "quarter": "Q1", "year": "2024"},
    "sec/2023/initech.pdf": {"company": "Initech", "quarter": "Q4", "revenue": "7"},
}
BROKEN = "sec/2024/q1/scanned-garbage.pdf"
IGNORED = "sec/2024/q1/notes.txt"  # not a pdf: the listing's extension filter skips it


def local_changes(recorder_url: str) -> list[tuple[str, str]]:
    """(exact text in the example, its replacement): what must change to run on this machine."""
    return [
        # docling and DeepSeek need models and a GPU: bring-your-own fakes, same identifiers
        (
            "uses: satellite/exospherehost/parse-pdf-with-docling",
            "uses: satellite/e2e/fake-pdf-parser",
        ),
        (
            "uses: satellite/exospherehost/deepseek-r1-distrill-llama-70b",
            "uses: satellite/e2e/fake-llm",
        ),
        # the three HTTP services point at the recording server
        (
            "url: https://api.aikin.com/v1/financial-reports",
            f"url: {recorder_url}/v1/financial-reports",
        ),
        (
            "log-level: info\n",
            f"log-level: info\n                endpoint: {recorder_url}/log/v1\n",
        ),
        (
            "pagerduty-service-id: ${{ secrets.PAGERDUTY_SERVICE_ID }}\n",
            "pagerduty-service-id: ${{ secrets.PAGERDUTY_SERVICE_ID }}\n"
            f"                endpoint: {recorder_url}/v2/enqueue\n",
        ),
        # The reference moves the file *from* the failure bucket, where it never is (the
        # listing reads aikin-financial-reports): as written, every move would fail.
        (
            f"origin-bucket: {FAILURE_BUCKET}",
            f"origin-bucket: {BUCKET}",
        ),
    ]


def reference_cluster(tmp_path: Path, recorder_url: str, env_prefix: str) -> Path:
    text = EXAMPLE.read_text()
    for old, new in local_changes(recorder_url):
        assert text.count(old) == 1, f"the example changed: {old!r} is not there exactly once"
        text = text.replace(old, new)
    # secrets: the literal placeholders become env: references
    text, count = re.subn(
        r'- (\w+): "your-[a-z0-9-]+"', lambda m: f'- {m[1]}: "env:{env_prefix}{m[1]}"', text
    )
    assert count == len(SECRET_NAMES)
    path = tmp_path / "structured-pdfs.yml"
    path.write_text(text)
    return path


def _pdf(fields: dict[str, str]) -> bytes:
    return ("%PDF-1.7\n" + "".join(f"{k}: {v}\n" for k, v in fields.items())).encode()


def _reset_bucket(s3: Any, bucket: str) -> None:
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", ()):
        s3.delete_object(Bucket=bucket, Key=entry["Key"])


def _keys(s3: Any, bucket: str) -> set[str]:
    return {e["Key"] for e in s3.list_objects_v2(Bucket=bucket).get("Contents", ())}


@pytest.fixture
def secrets(monkeypatch) -> tuple[str, dict[str, str]]:
    """A unique value per secret, in env vars with a per-test prefix."""
    prefix = f"E2E_{uuid.uuid4().hex[:6].upper()}_"
    values = {name: f"{name.lower()}-{uuid.uuid4().hex}" for name in SECRET_NAMES}
    for name, value in values.items():
        monkeypatch.setenv(prefix + name, value)
    return prefix, values


def test_reference_cluster_end_to_end(
    tmp_path, monkeypatch, moto_server, s3, http_recorder, sqlite_instance, secrets
):
    prefix, values = secrets
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)  # boto3's own setting: config untouched
    for bucket in (BUCKET, FAILURE_BUCKET):
        _reset_bucket(s3, bucket)
    for key, fields in GOOD.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=_pdf(fields))
    s3.put_object(Bucket=BUCKET, Key=BROKEN, Body=b"\x89PNG not a pdf at all")
    s3.put_object(Bucket=BUCKET, Key=IGNORED, Body=b"%PDF-1.7\nbut named .txt\n")
    path = reference_cluster(tmp_path, http_recorder.url, prefix)

    result = run_cluster_file(path, instance=sqlite_instance)

    assert result.success
    run = sqlite_instance.get_run_by_id(result.run_id)
    requests = list(http_recorder.requests)
    by_path: dict[str, list] = {}
    for request in requests:
        by_path.setdefault(request.path, []).append(request)
    assert set(by_path) == {"/v1/financial-reports", "/log/v1", "/v2/enqueue"}

    # the webhook: once per good file, bearer token, fake LLM output and the file path
    hooks = by_path["/v1/financial-reports"]
    assert len(hooks) == len(GOOD)
    bodies = {}
    for request in hooks:
        assert request.method == "POST"
        assert request.header("Authorization") == f"Bearer {values['API_BEARER_TOKEN']}"
        assert request.header("Content-Type") == "application/json"
        (body,) = request.json  # the reference writes body as a one-entry list
        bodies[body["file-path"]] = body["data"]
    assert set(bodies) == set(GOOD)  # every listed pdf, and only the pdfs
    for key, fields in GOOD.items():
        assert bodies[key] == {**fields, "model": "fake-llm", "max-tokens": 1024}
    assert len({r.header("Idempotency-Key") for r in hooks}) == len(GOOD)

    # S3: good files deleted, the broken one moved to the failure bucket, the .txt untouched
    assert _keys(s3, BUCKET) == {IGNORED}
    moved = f"failed/quaterly-financial-reports/{BROKEN.rsplit('/', 1)[1]}"
    assert _keys(s3, FAILURE_BUCKET) == {moved}
    assert s3.get_object(Bucket=FAILURE_BUCKET, Key=moved)["Body"].read().startswith(b"\x89PNG")

    # PagerDuty: one Events API v2 trigger for the broken file
    (page,) = by_path["/v2/enqueue"]
    event = page.json
    assert event["routing_key"] == values["PAGERDUTY_API_KEY"]
    assert event["event_action"] == "trigger"
    assert re.fullmatch(r"[0-9a-f]{64}", event["dedup_key"])
    assert event["dedup_key"] != stable_key("aikin/strucutred-pdfs", "")
    summary = event["payload"]["summary"]
    assert "Cluster aikin/strucutred-pdfs failed at cron '0 0 * * *'" in summary
    assert f"for file {BROKEN}" in summary
    assert f"s3://{FAILURE_BUCKET}/{moved}" in summary
    assert event["payload"]["severity"] == "error"
    assert event["payload"]["source"] == "aikin/strucutred-pdfs"
    details = event["payload"]["custom_details"]
    assert details["run-id"] == result.run_id
    assert details["satellite"] == "send-pagerduty-alert"
    assert details["service-id"] == values["PAGERDUTY_SERVICE_ID"]

    # New Relic: gzip batches of this run's records, each step's records in its own batch
    batches = by_path["/log/v1"]
    records = []
    for request in batches:
        assert request.header("Content-Encoding") == "gzip"
        assert request.raw_body[:2] == b"\x1f\x8b"
        assert request.header("Api-Key") == values["NEW_RELIC_API_KEY"]
        (payload,) = request.json
        common = payload["common"]["attributes"]
        assert common["account.id"] == values["NEW_RELIC_ACCOUNT_ID"]
        assert common["application.id"] == values["NEW_RELIC_APPLICATION_ID"]
        records.extend(payload["logs"])
    satellites = {
        "get-files-from-s3",
        "parse-pdf-with-docling",
        "deepseek-r1-distrill-llama-70b",
        "call-webhook",
        "delete-file-from-s3",
        "move-to-failure-bucket",
        "send-pagerduty-alert",
    }
    assert len(batches) >= len(satellites)  # at least one batch per step, sent at step end
    assert {r["attributes"]["run_id"] for r in records} == {result.run_id}
    assert {r["attributes"]["cluster"] for r in records} == {"aikin/strucutred-pdfs"}
    assert {r["attributes"]["satellite"] for r in records} == satellites
    item_ids = {r["attributes"].get("item_id") for r in records} - {None}
    assert len(item_ids) >= 1 + len(GOOD) + 1  # the seed, every listed pdf, and more
    assert all(isinstance(r["timestamp"], int) and r["message"] for r in records)
    failed_attempts = [
        r
        for r in records
        if r["attributes"]["satellite"] == "parse-pdf-with-docling"
        and r["attributes"]["level"] == "warning"
    ]
    assert len(failed_attempts) == 1  # a fatal error: no retry
    assert "is not a PDF" in failed_attempts[0]["message"]
    assert any("deleted s3://aikin-financial-reports/" in r["message"] for r in records)
    sent = json.dumps(records)
    for name in ("AWS_ACCESS_KEY", "AWS_SECRET_KEY", "API_BEARER_TOKEN", "PAGERDUTY_API_KEY"):
        assert values[name] not in sent

    # the run's counts: every item ended as succeeded or routed
    tags = run.tags
    assert (tags["exosphere/items"], tags["exosphere/succeeded"]) == ("4", "3")
    assert (tags["exosphere/routed"], tags["exosphere/failed"]) == ("1", "0")
    assert int(tags["exosphere/items"]) == int(tags["exosphere/succeeded"]) + int(
        tags["exosphere/routed"]
    )

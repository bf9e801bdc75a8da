"""`exosphere plan` prints each satellite's effective attempts: the calls a failing endpoint
sees per item, since the runtime owns retries and a client call makes one attempt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLUSTER = """\
version: 0.0.1b
cluster:
  identifier: test/plan-attempts
  sla: 12h
  trigger: api-call
  retries: 3
  delay: 2
  secrets:
    - NR_KEY: env:NR_KEY
  satellites:
    - uses: satellite/exospherehost/call-webhook
      identifier: notify
      config: {url: "https://example.com/hook"}
    - uses: satellite/exospherehost/call-webhook
      identifier: notify-once
      retries: 0
      config: {url: "https://example.com/once"}
    - uses: satellite/exospherehost/delete-file-from-s3
      identifier: clean-up
      retries: 1
      delay: 5m
      config: {bucket: reports, file-path: "a.pdf"}
  failure:
    from: notify
    satellites:
      - uses: satellite/exospherehost/send-pagerduty-alert
        identifier: page
        retries: 6
        config: {pagerduty-api-key: "${{ secrets.NR_KEY }}"}
        input: {message: "${{ failure.error }}"}
  logs:
    satellites:
      - uses: satellite/exospherehost/send-logs-to-new-relic
        identifier: new-relic
        config: {account-id: "42", api-key: "${{ secrets.NR_KEY }}"}
"""


def test_plan_prints_the_effective_attempts(tmp_path: Path) -> None:
    path = tmp_path / "attempts.yml"
    path.write_text(CLUSTER)
    exosphere = Path(sys.executable).with_name("exosphere")
    result = subprocess.run(
        [str(exosphere), "plan", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = {
        line.split()[0]: line for line in result.stdout.splitlines() if "  [satellite/" in line
    }
    assert lines["notify"].endswith(
        "attempts: 4 (retries: 3), backoff 2s x2 up to 600s, honours Retry-After"
    )
    assert lines["notify-once"].endswith("attempts: 1 (retries: 0)")  # no backoff to speak of
    assert lines["clean-up"].endswith(
        "attempts: 2 (retries: 1), backoff 300s x2 up to 600s, honours Retry-After"
    )
    assert lines["page"].endswith(
        "attempts: 7 (retries: 6), backoff 2s x2 up to 600s, honours Retry-After"
    )
    # a log sink's batches are retried like items, and it never fails the run
    assert lines["new-relic"].endswith(
        "attempts: 4 (retries: 3), backoff 2s x2 up to 600s, honours Retry-After, per batch of "
        "records; never fails or holds up the run"
    )

"""`exosphere plan` prints each satellite's effective attempts: the calls a failing endpoint
sees per item, since the runtime owns retries and a client call makes one attempt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


TIGHT = """\
version: 0.0.1b
cluster:
  identifier: test/plan-policy
  sla: 12h
  trigger: api-call
  tags: {dagster/max_runtime: "600", team: ops}
  satellites:
    - uses: satellite/exospherehost/call-webhook
      identifier: notify
      config: {url: "https://example.com/hook"}
"""


def _plan_output(path: Path) -> str:
    from click.testing import CliRunner

    from exosphere_dagster.entry.cli import main

    result = CliRunner().invoke(main, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    return result.output


def test_plan_prints_the_resolved_run_policy(tmp_path: Path) -> None:
    """The printed priority, maximum runtime and deadline rule are the resolved plan's: a
    cluster tag tighter than its tier shows as the maximum runtime (it printed the tier's)."""
    from exosphere_dagster.resolve.catalog import registry_with_plugins
    from exosphere_dagster.resolve.deployment import Deployment
    from exosphere_dagster.resolve.resolve import resolve
    from yaml_loader import load, plan

    path = tmp_path / "tight.yml"
    path.write_text(TIGHT)
    registry = registry_with_plugins()
    run = resolve(plan(load(path), registry), Deployment.load(), registry).run
    assert run.max_runtime_seconds == 600 < run.sla_seconds
    out = _plan_output(path)
    assert f"sla: 12h (priority {run.priority}, max runtime 600s)" in out
    assert f"deadline: trigger time + {run.sla_seconds}s" in out
    assert f"under {run.urgent_within_seconds:g}s are left" in out
    assert "dagster/max_runtime=600" in out and "team=ops" in out


def test_plan_reads_every_number_from_the_execution_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-made plan with values no tier has: `exosphere plan` prints those, so it
    recomputes nothing from the tier or the quantities."""
    import dataclasses

    import exosphere_dagster.resolve.catalog as catalog_module
    from exosphere_dagster.resolve.execution_plan import ChunkPolicy

    real = catalog_module.resolve

    def odd(plan, deployment, registry):  # noqa: ANN001, ANN202
        execution = real(plan, deployment, registry)
        run = dataclasses.replace(
            execution.run,
            priority=7,
            max_runtime_seconds=123,
            sla_seconds=4567,
            urgent_within_seconds=89.5,
            tags={"dagster/priority": "7", "odd": "yes"},
        )
        node = dataclasses.replace(
            execution.node("notify"),
            chunk=ChunkPolicy(3, 3, 1),
            concurrency=11,
            timeout_seconds=42.0,
            resources=dataclasses.replace(
                execution.node("notify").resources, cpu=1.25, memory_bytes=3 * 2**30, gpu=2
            ),
        )
        return dataclasses.replace(execution, run=run, nodes={"notify": node})

    monkeypatch.setattr(catalog_module, "resolve", odd)
    path = tmp_path / "tight.yml"
    path.write_text(TIGHT)
    out = _plan_output(path)
    assert "(priority 7, max runtime 123s)" in out
    assert "deadline: trigger time + 4567s; priority raised when under 89.5s are left" in out
    assert "run tags: dagster/priority=7, odd=yes" in out
    step = next(line for line in out.splitlines() if line.strip().startswith("notify:"))
    assert "chunks of 3 to 3 items" in step and "11 at once" in step and "timeout 42s" in step
    assert "1.25 CPU, 3 GiB, 2 GPU" in step
    cost = next(line for line in out.splitlines() if line.strip().startswith("notify  pool"))
    assert "1.25 CPU + 2 GPU" in cost and "up to 3 item(s)" in cost

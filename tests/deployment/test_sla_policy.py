"""SLA tags, the deadline (EDF) policy, placement overrides and the SLA-breach item replay, each
without a daemon."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterRunStatus
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_k8s import k8s_job_executor

from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import RunWindow
from exosphere_dagster.resolve.placement import K8S_CONFIG_TAG, PlacementPolicy, Pods, Pool
from exosphere_dagster.resolve.resolve import resolve
from exosphere_dagster.resolve.tags import (
    BASE_PRIORITY_TAG,
    DEADLINE_TAG,
    MAX_RUNTIME_TAG,
    PRIORITY_TAG,
    SLA_TAG,
    TRIGGER_TIME_TAG,
)
from exosphere_dagster.runtime.checkpoint import CheckpointStore
from exosphere_dagster.runtime.items import seed_items
from exosphere_dagster.translate.job import build_job, run_tags
from exosphere_dagster.translate.scheduling.breach_job import (
    breach_message,
    build_breach_job,
    in_flight_items,
)
from exosphere_dagster.translate.scheduling.deadlines import (
    URGENT_BASE,
    QueuedRun,
    apply_deadline_policy,
    boosts,
    urgent_priority,
)
from yaml_loader import load, plan

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "examples" / "structured-pdfs-fixed.yml"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
IN_PODS = PlacementPolicy(pods=Pods(run=True, steps=True))  # a Kubernetes deployment's


def _plan(text: str | None = None, tmp_path: Path | None = None):
    path = REFERENCE
    if text is not None:
        assert tmp_path is not None
        path = tmp_path / "cluster.yml"
        path.write_text(text)
    return plan(load(path), registry_with_plugins())


def sla_run_tags(cluster, policy: PlacementPolicy) -> dict[str, str]:
    """A run's tags as the job carries them: the resolved ``RunPolicy.tags`` plus, where runs are
    pods, the run pod's placement."""
    deployment = Deployment(placement=policy)
    return run_tags(resolve(cluster, deployment, registry_with_plugins()), policy.pods)


def _breach(cluster):
    """The cluster's SLA-breach job under the environment's deployment."""
    registry, deployment = registry_with_plugins(), Deployment.load()
    return build_breach_job(resolve(cluster, deployment, registry), registry, deployment)


def _run(run_id: str, sla: str, deadline: datetime | None, priority: str) -> QueuedRun:
    hours = int(sla[:-1])
    window = RunWindow(hours * 3600, hours * 3600 / 4)  # the rule resolve writes for the tier
    tags = {SLA_TAG: sla, PRIORITY_TAG: priority, **window.as_tags()}
    if deadline is not None:
        tags[DEADLINE_TAG] = deadline.isoformat()
    return QueuedRun(run_id, f"job_{sla}", tags)


def test_sla_tags_on_every_run_and_a_cluster_may_only_tighten_max_runtime(tmp_path):
    tags = sla_run_tags(_plan(), IN_PODS)
    assert tags[PRIORITY_TAG] == "30" and tags[MAX_RUNTIME_TAG] == str(6 * 3600)
    assert tags[SLA_TAG] == "6h"
    assert sla_run_tags(_plan(), PlacementPolicy()) == {
        k: v for k, v in tags.items() if k != K8S_CONFIG_TAG
    }  # a local run: the same tags, no pod placement
    run_pod = json.loads(tags[K8S_CONFIG_TAG])
    assert run_pod["pod_spec_config"]["node_selector"] == {"exosphere.host/capacity": "on-demand"}
    text = REFERENCE.read_text().replace(
        "    retries: 3\n", '    retries: 3\n    tags:\n        dagster/max_runtime: "60"\n'
    )
    assert sla_run_tags(_plan(text, tmp_path), PlacementPolicy())[MAX_RUNTIME_TAG] == "60"
    looser = text.replace('"60"', '"999999"')
    assert sla_run_tags(_plan(looser, tmp_path), PlacementPolicy())[MAX_RUNTIME_TAG] == str(
        6 * 3600
    )


def test_the_run_pod_follows_the_policy_build_job_is_given():
    """The run pod's placement (a job tag) comes from the policy passed to build_job, like the
    step pods' (op tags), not from a policy file read on the side."""
    policy = PlacementPolicy(tiers={"6h": Pool({"pool": "latency"})})
    deployment = Deployment(placement=policy)
    job = build_job(_plan(), registry_with_plugins(), deployment, executor_def=k8s_job_executor)
    run_pod = json.loads(job.tags[K8S_CONFIG_TAG])
    assert run_pod["pod_spec_config"]["node_selector"] == {"pool": "latency"}
    for node in job.graph.nodes:
        pod = json.loads(node.tags[K8S_CONFIG_TAG])["pod_spec_config"]
        assert pod["node_selector"]["pool"] == "latency", node.name


def test_edf_boosts_only_runs_near_their_deadline_earliest_first():
    runs = [
        _run("fresh-6h", "6h", NOW + timedelta(hours=6), "30"),
        _run("old-24h", "24h", NOW + timedelta(hours=5), "10"),  # 5h left < 24h/4: urgent
        _run("older-24h", "24h", NOW + timedelta(hours=1), "10"),
        _run("late-6h", "6h", NOW + timedelta(minutes=80), "30"),  # 80 min < 6h/4: urgent
        _run("no-deadline", "12h", None, "20"),
    ]
    changes = boosts(runs, NOW)
    assert set(changes) == {"old-24h", "older-24h", "late-6h"}
    priority = {r: int(c[PRIORITY_TAG]) for r, c in changes.items()}
    assert priority["older-24h"] > priority["late-6h"] > priority["old-24h"] > URGENT_BASE > 30
    assert changes["old-24h"][BASE_PRIORITY_TAG] == "10"
    # A job's expected runtime brings urgency forward: 6h left <= 1.5h + 4.6h, not <= 1.5h + 2h.
    assert "fresh-6h" not in boosts(runs, NOW, {"job_6h": 2 * 3600.0})
    assert "fresh-6h" in boosts(runs, NOW, {"job_6h": 4.6 * 3600.0})
    # Idempotent: an already boosted run is left alone until its priority should rise further.
    boosted = [
        _run("older-24h", "24h", NOW + timedelta(hours=1), changes["older-24h"][PRIORITY_TAG])
    ]
    assert boosts(boosted, NOW) == {}
    assert "older-24h" in boosts(boosted, NOW + timedelta(minutes=5))
    assert urgent_priority(NOW - timedelta(minutes=10), NOW) > urgent_priority(NOW, NOW)


def test_deadline_policy_stamps_runs_launched_by_hand_and_boosts(sqlite_instance):
    instance = sqlite_instance
    job = build_job(_plan(), registry_with_plugins())
    manual = create_run_for_test(instance, job_name=job.name, tags=dict(job.run_tags))
    deadline = (NOW + timedelta(minutes=30)).isoformat()
    urgent_tags = {**job.run_tags, SLA_TAG: "24h", PRIORITY_TAG: "10", DEADLINE_TAG: deadline}
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job.name)
    urgent = create_run_for_test(
        instance,
        job_name=job.name,
        tags=urgent_tags,
        status=DagsterRunStatus.QUEUED,
        remote_job_origin=origin,
    )
    stamped, boosted = apply_deadline_policy(instance, NOW)
    assert (stamped, boosted) == (1, 1)
    tags = instance.get_run_by_id(manual.run_id).tags
    span = datetime.fromisoformat(tags[DEADLINE_TAG]) - datetime.fromisoformat(
        tags[TRIGGER_TIME_TAG]
    )
    assert span == timedelta(hours=6)
    assert int(instance.get_run_by_id(urgent.run_id).tags[PRIORITY_TAG]) > URGENT_BASE


def test_placement_policy_file_overrides_pools_and_gpu_image(tmp_path, monkeypatch):
    policy_file = tmp_path / "placement.yaml"
    policy_file.write_text(
        "tiers:\n  24h:\n    node-selector: {karpenter.sh/capacity-type: spot}\n"
        "gpu-image: vllm:latest\n"
    )
    monkeypatch.setenv("EXOSPHERE_PLACEMENT_FILE", str(policy_file))  # before settings are read
    policy = PlacementPolicy.load(policy_file)
    assert policy.tiers["24h"].node_selector == {"karpenter.sh/capacity-type": "spot"}
    assert policy.tiers["6h"].node_selector == {"exosphere.host/capacity": "on-demand"}
    assert policy.gpu_image == "vllm:latest"
    assert Deployment.load().placement.gpu_image == "vllm:latest"  # the setting, read once


def test_in_flight_items_replay_the_checkpoints(tmp_path):
    cluster = _plan()
    store = CheckpointStore(tmp_path)
    seeds = seed_items([{"trigger": "cron"}])
    files = [{"file-path": f"sec/{n}.pdf", "file-name": f"{n}.pdf"} for n in ("a", "b", "c")]
    log = store.log_for("root", "get_files_from_s3", "c00000")
    log.record(seeds[0].id, files)
    log.close()
    children = [seeds[0].child("get-files-from-s3", i, f) for i, f in enumerate(files)]
    parsed = store.log_for("root", "parse_pdf_with_docling", "c00001")
    parsed.record(children[0].id, [{"markdown": "# a"}])
    parsed.close()
    pending = in_flight_items(cluster, seeds, store, "root")
    at = {(node, item.lineage["get-files-from-s3"]["file-name"]) for node, item in pending}
    assert at == {
        ("parse-pdf-with-docling", "b.pdf"),
        ("parse-pdf-with-docling", "c.pdf"),
        ("deepseek-r1-distrill-llama-70b", "a.pdf"),
    }
    assert in_flight_items(cluster, seeds, store, "nothing") == [("get-files-from-s3", seeds[0])]


def test_breach_job_and_breach_detection():
    cluster = _plan()
    job = _breach(cluster)
    assert job is not None and job.name == "aikin__strucutred_pdfs__sla_breach"
    assert {n.name for n in job.graph.nodes} >= {
        "exosphere__sla_breach",
        "move_to_failure_bucket",
        "send_pagerduty_alert",
        "exosphere__summary",
    }

    class Run:
        run_id, job_name = "r1", "aikin__strucutred_pdfs"
        tags = {SLA_TAG: "6h", MAX_RUNTIME_TAG: "100", DEADLINE_TAG: "2026-11-24T18:00:00+00:00"}

    class Record:
        start_time, end_time = 1000.0, 1101.0

    assert "SLA breach: run r1" in breach_message(Run, Record)
    Record.end_time = 1050.0
    assert breach_message(Run, Record) is None
    assert breach_message(Run, Record, "Exceeded maximum runtime of 100 seconds.") is not None


@pytest.mark.parametrize("sla", ["12h", "24h"])
def test_longer_tiers_run_on_spot_capacity(sla, tmp_path):
    text = REFERENCE.read_text().replace("sla: 6h", f"sla: {sla}")
    tags = sla_run_tags(_plan(text, tmp_path), IN_PODS)
    tolerations = json.loads(tags[K8S_CONFIG_TAG])["pod_spec_config"]["tolerations"]
    assert tolerations == [
        {
            "key": "exosphere.host/capacity",
            "operator": "Equal",
            "value": "spot",
            "effect": "NoSchedule",
        }
    ]


def test_the_breach_job_says_what_it_is_and_when_it_runs():
    """The jobs list shows ``<job>__sla_breach`` beside the cluster's job: its description says
    it is an alert, what starts it, and which satellites it goes through."""
    job = _breach(_plan())
    assert job is not None and job.name == "aikin__strucutred_pdfs__sla_breach"
    text = job.description or ""
    assert text.startswith("SLA-breach alert of cluster aikin/strucutred-pdfs.")
    assert "`exosphere__sla_breach` sensor" in text and "past its 6h SLA" in text
    assert "`move-to-failure-bucket`, `send-pagerduty-alert`" in text
    assert "log satellites (`send-logs-to-new-relic`)" in text
    op = job.graph.node_named("exosphere__sla_breach").definition
    assert "in flight" in (op.description or "") and "failure.error" in (op.description or "")

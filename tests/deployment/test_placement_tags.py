"""Where ``dagster-k8s/config`` tags are written: only for pods that read them. A local run
(``exosphere dev``, ``exosphere run``) carries none; the Helm deployment (``EXOSPHERE_EXECUTOR=k8s``)
places the run pod and every step pod; an instance whose run launcher is a K8sRunLauncher, with
steps in the run pod, places the run pod only. Cost never needs the tag (tests/exosphere_dagster/
test_cost_runs.py prices a local run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dagster_k8s import k8s_job_executor

from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.placement import (
    K8S_CONFIG_TAG,
    PlacementPolicy,
    Pods,
    instance_launches_pods,
)
from exosphere_dagster.resolve.resolve import resolve
from exosphere_dagster.resolve.tags import (
    CLUSTER_FILE_TAG,
    CLUSTER_TAG,
    MAX_RUNTIME_TAG,
    PRIORITY_TAG,
    SLA_SECONDS_TAG,
    SLA_TAG,
    URGENT_WITHIN_TAG,
)
from exosphere_dagster.translate.job import build_job
from exosphere_dagster.translate.scheduling.breach_job import build_breach_job
from yaml_loader import load, plan

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deployments"
REFERENCE = ROOT / "examples" / "structured-pdfs-fixed.yml"


def _home(tmp_path: Path, instance_file: str | None) -> Path:
    """A DAGSTER_HOME holding ``deployments/<instance_file>`` as its dagster.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    if instance_file:
        shutil.copy(DEPLOY / instance_file, home / "dagster.yaml")
    return home


def _helm_env() -> dict[str, str]:
    lines = (DEPLOY / "helm" / "exosphere.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _breach(cluster, registry, deployment: Deployment | None = None):
    """The cluster's SLA-breach job under ``deployment`` (the environment's by default)."""
    deployment = deployment or Deployment.load()
    return build_breach_job(resolve(cluster, deployment, registry), registry, deployment)


def _tagged(job) -> tuple[bool, set[str]]:
    """(whether the job carries the run pod's tag, the ops that carry a step pod's tag)."""
    ops = {n.name for n in job.graph.nodes if K8S_CONFIG_TAG in n.tags}
    return K8S_CONFIG_TAG in job.tags, ops


@pytest.fixture
def reference():
    registry = registry_with_plugins()
    return plan(load(REFERENCE), registry), registry


def test_a_local_run_carries_no_kubernetes_config_and_few_run_tags(
    reference, tmp_path, monkeypatch
):
    monkeypatch.setenv("DAGSTER_HOME", str(_home(tmp_path, "dagster.local.yaml")))
    monkeypatch.delenv("EXOSPHERE_EXECUTOR", raising=False)
    assert Deployment.load().placement.pods == Pods(run=False, steps=False)
    job = build_job(*reference)
    assert _tagged(job) == (False, set())
    window = {SLA_SECONDS_TAG, URGENT_WITHIN_TAG}  # the deadline rule, for tag-only readers
    assert set(job.tags) == {
        PRIORITY_TAG,
        MAX_RUNTIME_TAG,
        SLA_TAG,
        CLUSTER_TAG,
        CLUSTER_FILE_TAG,
        *window,
    }
    breach = _breach(*reference)
    assert breach is not None and _tagged(breach) == (False, set())


def test_the_helm_deployment_places_the_run_pod_and_every_step_pod(
    reference, tmp_path, monkeypatch
):
    for name, value in _helm_env().items():  # the code location's environment (values.yaml)
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(_home(tmp_path, None)))
    assert Deployment.load().placement.pods == Pods(run=True, steps=True)
    job = build_job(*reference)
    assert job.executor_def is k8s_job_executor
    run_tagged, ops = _tagged(job)
    assert run_tagged and ops == {n.name for n in job.graph.nodes}
    llm = json.loads(job.graph.node_named("deepseek_r1_distrill_llama_70b").tags[K8S_CONFIG_TAG])
    assert llm["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    breach = _breach(*reference)
    assert breach is not None and _tagged(breach)[0]
    assert _tagged(breach)[1] == {n.name for n in breach.graph.nodes}


def test_a_kubernetes_run_launcher_alone_places_the_run_pod(reference, tmp_path, monkeypatch):
    """deployments/dagster.yaml without EXOSPHERE_EXECUTOR: steps run inside the run pod."""
    monkeypatch.setenv("DAGSTER_HOME", str(_home(tmp_path, "dagster.yaml")))
    monkeypatch.delenv("EXOSPHERE_EXECUTOR", raising=False)
    assert instance_launches_pods()
    job = build_job(*reference)
    assert _tagged(job) == (True, set())
    pod = json.loads(job.tags[K8S_CONFIG_TAG])
    assert pod["pod_spec_config"]["node_selector"] == {"exosphere.host/capacity": "on-demand"}


def test_the_executor_a_job_is_built_with_decides_for_its_steps(reference):
    plain = Deployment(placement=PlacementPolicy())
    job = build_job(*reference, plain, executor_def=k8s_job_executor)
    run_tagged, ops = _tagged(job)
    assert run_tagged and ops == {n.name for n in job.graph.nodes}
    local = Deployment(placement=PlacementPolicy(pods=Pods(run=True, steps=True)))
    from exosphere_dagster.translate.executor import exosphere_executor

    assert _tagged(build_job(*reference, local, executor_def=exosphere_executor)) == (True, set())


@pytest.mark.parametrize(
    ("text", "launches"),
    [
        ("run_launcher: {module: dagster_k8s, class: K8sRunLauncher}\n", True),
        (
            "run_launcher: {module: dagster_celery_k8s.launcher, class: CeleryK8sRunLauncher}\n",
            True,
        ),
        ("run_launcher: {module: dagster.core.launcher, class: DefaultRunLauncher}\n", False),
        ("storage: {sqlite: {base_dir: x}}\n", False),
        ("run_launcher: [\n", False),  # unreadable: no pods assumed
        ("- a list\n", False),
    ],
)
def test_the_instance_file_decides_whether_runs_are_pods(tmp_path, text, launches):
    (tmp_path / "dagster.yaml").write_text(text)
    assert instance_launches_pods(tmp_path) is launches
    assert instance_launches_pods(tmp_path / "missing") is False

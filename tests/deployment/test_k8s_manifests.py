"""The Kubernetes Jobs dagster-k8s itself would create for each step (K8sStepHandler) and for the
run (K8sRunLauncher) of the reference cluster, captured from a mocked Kubernetes API and checked
with ``kubernetes-validate --strict``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from dagster import instance_for_test
from dagster._config import process_config, resolve_to_config_type
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import create_execution_plan
from dagster._core.execution.context.system import PlanData, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import create_context_free_log_manager
from dagster._core.execution.plan.step import (
    UnresolvedCollectExecutionStep,
    UnresolvedMappedExecutionStep,
)
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.init import InitExecutorContext
from dagster._core.executor.step_delegating.step_handler.base import StepHandlerContext
from dagster._core.launcher import LaunchRunContext
from dagster._core.test_utils import create_run_for_test
from dagster._grpc.types import ExecuteStepArgs
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.executor import _K8S_EXECUTOR_CONFIG_SCHEMA, K8sStepHandler, k8s_job_executor
from kubernetes.client import ApiClient

from exosphere_dagster.entry.reconstruct import reconstructable_job
from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.placement import GPU_RESOURCE
from exosphere_dagster.resolve.pools import CAPACITY_LABEL
from exosphere_dagster.translate.job import build_job
from yaml_loader import load, plan

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "examples" / "structured-pdfs-fixed.yml"
IMAGE = "registry.example.com/exosphere-dagster:test"
LLM, S3 = "deepseek_r1_distrill_llama_70b", "get_files_from_s3"
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "t", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "t", "user": {"token": "not-a-real-token"}}],
    "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
    "current-context": "t",
}


@pytest.fixture
def kubeconfig(tmp_path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    return str(path)


def launcher_config(kubeconfig: str) -> dict:
    return {
        "service_account_name": "dagster",
        "instance_config_map": "dagster-instance",
        "dagster_home": "/opt/dagster/dagster_home",
        "job_image": IMAGE,
        "job_namespace": "dagster",
        "load_incluster_config": False,
        "kubeconfig_file": kubeconfig,
    }


def manifests_for(cluster_file: Path, kubeconfig: str) -> dict[str, dict]:
    """Step key (or "run") -> the Job manifest dagster-k8s would submit for it."""
    registry = registry_with_plugins()
    cluster = plan(load(cluster_file), registry)
    job = build_job(cluster, registry, executor_def=k8s_job_executor)
    origin = reconstructable_job(cluster_file).get_python_origin()
    config = launcher_config(kubeconfig)
    overrides = {
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}
    }
    out: dict[str, dict] = {}
    with instance_for_test(overrides=overrides) as instance:
        run = create_run_for_test(
            instance, job_name=job.name, job_code_origin=origin, tags=dict(job.run_tags)
        )
        splitters = [
            n.name
            for n in job.graph.nodes
            if n.definition.tags.get("exosphere/role") in ("start", "gather")
        ]
        mappings = {s: {"chunks": ["c00000"]} for s in splitters}  # one chunk per segment
        execution_plan = create_execution_plan(job)
        steps = []
        for step in execution_plan.steps:
            if isinstance(step, UnresolvedMappedExecutionStep):
                steps.extend(step.resolve(mappings))
            else:
                is_collect = isinstance(step, UnresolvedCollectExecutionStep)
                steps.append(step.resolve(mappings) if is_collect else step)
        executor = k8s_job_executor.executor_creation_fn(
            InitExecutorContext(
                job=InMemoryJob(job),
                executor_def=k8s_job_executor,
                executor_config=process_config(
                    resolve_to_config_type(_K8S_EXECUTOR_CONFIG_SCHEMA), {}
                ).value,
                instance=instance,
            )
        )
        plan_context = PlanOrchestrationContext(
            plan_data=PlanData(
                job=InMemoryJob(job),
                dagster_run=run,
                instance=instance,
                execution_plan=execution_plan,
                raise_on_error=True,
                retry_mode=RetryMode.DISABLED,
            ),
            log_manager=create_context_free_log_manager(instance, run),
            executor=executor,
            output_capture=None,
        )
        batch_api = mock.MagicMock()
        handler = K8sStepHandler(
            image=IMAGE,
            container_context=K8sContainerContext(namespace="dagster"),
            load_incluster_config=False,
            kubeconfig_file=kubeconfig,
            k8s_client_batch_api=batch_api,
        )
        for step in steps:
            args = ExecuteStepArgs(origin, run.run_id, [step.key])
            context = StepHandlerContext(instance, plan_context, steps, args, run)
            list(handler.launch_step(context))
            out[step.key] = _body(batch_api)
        run_api = mock.MagicMock()
        launcher = K8sRunLauncher(**config, k8s_client_batch_api=run_api)
        launcher.register_instance(instance)
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        out["run"] = _body(run_api)
    return out


def _body(api: mock.MagicMock) -> dict:
    name, _args, kwargs = api.method_calls[-1]
    assert name == "create_namespaced_job"
    return ApiClient().sanitize_for_serialization(kwargs["body"])


def _pod(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


def _limits(manifest: dict) -> dict:
    return _pod(manifest)["containers"][0]["resources"].get("limits", {})


def _validate_strict(manifests: dict[str, dict], folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir()
    files = []
    for i, (key, manifest) in enumerate(sorted(manifests.items())):
        files.append(folder / f"{i:02d}-{key.replace('[', '-').replace(']', '')}.yaml")
        files[-1].write_text(yaml.safe_dump(manifest))
    tool = shutil.which("kubernetes-validate") or str(
        Path(sys.executable).with_name("kubernetes-validate")
    )
    return subprocess.run(
        [tool, "--strict", *map(str, files)], capture_output=True, text=True, timeout=120
    )


def test_reference_cluster_manifests_are_valid_and_placed(kubeconfig, tmp_path, monkeypatch):
    monkeypatch.setenv("EXOSPHERE_GPU_IMAGE", "registry.example.com/exosphere-vllm:test")
    manifests = manifests_for(REFERENCE, kubeconfig)
    mapped = {k for k in manifests if k.endswith("[c00000]")}
    assert {f"{LLM}[c00000]", f"{S3}[c00000]", "exosphere__summary", "run"} <= set(manifests)
    assert len(mapped) == 7  # five main satellites and two failure satellites

    result = _validate_strict(manifests, tmp_path / "manifests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource job/") == len(manifests), result.stdout
    broken = {"run": {**manifests["run"], "spek": {}}}  # strict mode rejects unknown fields
    assert _validate_strict(broken, tmp_path / "broken").returncode != 0

    llm = manifests[f"{LLM}[c00000]"]
    assert _limits(llm)[GPU_RESOURCE] == "1"
    assert _pod(llm)["nodeSelector"] == {
        "nvidia.com/gpu.present": "true",
        CAPACITY_LABEL: "on-demand",
    }
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in _pod(llm)[
        "tolerations"
    ]
    assert _pod(llm)["containers"][0]["image"] == "registry.example.com/exosphere-vllm:test"

    s3 = manifests[f"{S3}[c00000]"]
    assert GPU_RESOURCE not in _limits(s3)
    assert GPU_RESOURCE not in str(_pod(s3).get("tolerations"))
    assert _pod(s3)["nodeSelector"] == {CAPACITY_LABEL: "on-demand"}  # 6h: on-demand capacity
    assert _pod(s3)["containers"][0]["image"] == IMAGE
    pdf = manifests["parse_pdf_with_docling[c00000]"]  # declared Resources(cpu="2", memory="4Gi")
    assert _pod(pdf)["containers"][0]["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}

    run = manifests["run"]  # the run worker pod gets the job-level tag
    assert _pod(run)["nodeSelector"] == {CAPACITY_LABEL: "on-demand"}
    assert GPU_RESOURCE not in _limits(run)


def test_24h_cluster_lands_on_the_cheaper_pool_and_yaml_overrides_win(kubeconfig, tmp_path):
    text = REFERENCE.read_text().replace("sla: 6h", "sla: 24h")
    text = text.replace(
        "          identifier: parse-pdf-with-docling\n",
        "          identifier: parse-pdf-with-docling\n"
        "          resources:\n            memory: 8Gi\n"
        "            node-selector:\n              disk: ssd\n",
    )
    cluster_file = tmp_path / "nightly.yml"
    cluster_file.write_text(text)
    manifests = manifests_for(cluster_file, kubeconfig)
    spot = {"key": CAPACITY_LABEL, "operator": "Equal", "value": "spot", "effect": "NoSchedule"}
    for key, manifest in manifests.items():
        assert _pod(manifest)["nodeSelector"][CAPACITY_LABEL] == "spot", key
        assert spot in _pod(manifest)["tolerations"], key
    pdf = _pod(manifests["parse_pdf_with_docling[c00000]"])
    assert pdf["nodeSelector"] == {CAPACITY_LABEL: "spot", "disk": "ssd"}
    assert pdf["containers"][0]["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    llm = _pod(manifests[f"{LLM}[c00000]"])
    assert llm["nodeSelector"] == {CAPACITY_LABEL: "spot", "nvidia.com/gpu.present": "true"}
    assert len(llm["tolerations"]) == 2
    result = _validate_strict(manifests, tmp_path / "manifests")
    assert result.returncode == 0, result.stdout + result.stderr

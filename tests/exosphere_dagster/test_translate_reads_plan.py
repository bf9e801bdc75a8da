"""translate reads every number from the resolved plan: a hand-made ExecutionPlan whose values
no tier has (priority 7, max runtime 123, chunks of exactly 3, pool "zz", 1.25 CPUs, 4 step
retries) shows them in the job tags, the op's dagster-k8s/config, the op's RetryPolicy, the
start step's chunks, the SLA-breach job's chunks and the step's cost."""

from __future__ import annotations

import dataclasses
import json
from types import MappingProxyType

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.test_utils import create_run_for_test
from dagster_k8s import k8s_job_executor

from clusters import cluster, dump, failure_branch, note, record
from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ChunkPolicy, ExecutionPlan, ResourceRequest
from exosphere_dagster.resolve.placement import K8S_CONFIG_TAG, POOL_LABEL, Pool
from exosphere_dagster.resolve.resolve import resolve
from exosphere_dagster.resolve.tags import MAX_RUNTIME_TAG, PRIORITY_TAG
from exosphere_dagster.translate.deployment_resource import ExosphereDeployment
from exosphere_dagster.translate.job import job_for
from exosphere_dagster.translate.ops import START_OP
from exosphere_dagster.translate.scheduling.breach_job import BREACH_OP, build_breach_job
from exosphere_dagster.translate.scheduling.triggers import run_config_for
from yaml_loader import load_text, plan

ODD_CHUNK = ChunkPolicy(3, 3, 1)  # no tier cuts chunks of exactly 3
ODD_POOL = Pool({"pool": "zz"}, name="zz")


def _odd_request(request: ResourceRequest) -> ResourceRequest:
    """``request`` for 1.25 CPUs and 1 GiB in pool "zz"."""
    placement = dataclasses.replace(
        request.placement,
        requests={"cpu": "1250m", "memory": "1Gi"},
        pools=(ODD_POOL,),
        labels={POOL_LABEL: "zz"},
    )
    return ResourceRequest(placement, cpu=1.25, memory_bytes=2**30, gpu=0)


def _odd(execution: ExecutionPlan) -> ExecutionPlan:
    """``execution`` with values no tier has, as resolve never makes them."""
    run = dataclasses.replace(
        execution.run,
        priority=7,
        max_runtime_seconds=123,
        tags=MappingProxyType({**execution.run.tags, PRIORITY_TAG: "7", MAX_RUNTIME_TAG: "123"}),
        light=_odd_request(execution.run.light),
    )
    nodes = {
        node_id: dataclasses.replace(
            planned,
            step_retries=4,
            step_retry_delay=0.25,
            chunk=ODD_CHUNK,
            resources=_odd_request(planned.resources),
        )
        for node_id, planned in execution.nodes.items()
    }
    return dataclasses.replace(
        execution,
        run=run,
        nodes=MappingProxyType(nodes),
        chunks=MappingProxyType(dict.fromkeys(execution.chunks, ODD_CHUNK)),
    )


@pytest.fixture
def setup(tmp_path):
    registry = registry_with_plugins()
    text = dump(
        cluster(
            "test/reads-plan",
            [record("rec", "x", tmp_path)],
            failure=failure_branch("rec", [note("noted", tmp_path, "breach")]),
        )
    )
    prices = tmp_path / "prices.yml"
    prices.write_text("source: test prices\npools:\n  zz: {cpu-hour: 3600.0}\n")
    settings = Deployment.load().settings.model_copy(update={"prices_file": prices})
    deployment = Deployment.from_settings(settings)
    execution = _odd(resolve(plan(load_text(text), registry), deployment, registry))
    return execution, registry, deployment


def test_job_tags_op_pods_and_retries_come_from_the_plan(setup):
    execution, registry, deployment = setup
    job = job_for(execution, registry, deployment, executor_def=k8s_job_executor)
    assert job.tags[PRIORITY_TAG] == "7" and job.tags[MAX_RUNTIME_TAG] == "123"
    op = job.graph.node_named("rec")
    pod = json.loads(op.tags[K8S_CONFIG_TAG])
    assert pod["container_config"]["resources"]["requests"]["cpu"] == "1250m"
    assert pod["pod_spec_config"]["node_selector"] == {"pool": "zz"}
    assert pod["pod_template_spec_metadata"]["labels"][POOL_LABEL] == "zz"
    assert op.definition.retry_policy.max_retries == 4
    assert op.definition.retry_policy.delay == 0.25
    run_pod = json.loads(job.tags[K8S_CONFIG_TAG])  # the run pod: the light request's pool
    assert run_pod["pod_spec_config"]["node_selector"] == {"pool": "zz"}


def test_start_chunks_and_step_cost_come_from_the_plan(setup, sqlite_instance):
    execution, registry, deployment = setup
    job = job_for(execution, registry, deployment)
    inputs = [{"n": i} for i in range(7)]
    result = job.execute_in_process(run_config=run_config_for(inputs), instance=sqlite_instance)
    assert result.success
    manifest = result.output_for_node(START_OP, "manifest")
    assert [len(c) for c in manifest.values()] == [3, 3, 1]  # chunk 3..3, not the tier's
    outputs = result.output_for_node("rec", "report")  # chunk -> its report(s)
    reports = [r for out in outputs.values() for r in (out if isinstance(out, list) else [out])]
    assert len(outputs) == 3 and {r.satellite for r in reports} == {"rec"}
    for report in reports:
        metrics = report.metrics
        # 1.25 CPUs at 3600 USD per CPU-hour: 1.25 USD per second of the step (the seconds
        # are rounded to 4 digits, the products to theirs)
        seconds = metrics["compute/seconds"]
        assert metrics["compute/cpu_seconds"] == pytest.approx(1.25 * seconds, abs=2e-4)
        assert metrics["cost/compute_usd"] == pytest.approx(1.25 * seconds, abs=2e-4)
    pools = [
        event.event_specific_data.metadata["compute/pool"].value
        for event in result.all_events
        if event.event_type_value == "STEP_OUTPUT"
        and event.step_key.startswith("rec[")
        and "compute/pool" in event.event_specific_data.metadata
    ]
    assert pools == ["zz"] * 3  # the step's cost is priced in the plan's pool


def test_breach_job_chunks_with_the_plan(setup, sqlite_instance: DagsterInstance):
    execution, registry, deployment = setup
    breach = build_breach_job(execution, registry, deployment)
    assert breach is not None
    failed = create_run_for_test(
        sqlite_instance,
        job_name=execution.plan.job_name,
        run_config=run_config_for([{"n": i} for i in range(7)]),
        status=DagsterRunStatus.FAILURE,
    )
    config = {"ops": {BREACH_OP: {"config": {"run_id": failed.run_id, "error": "too slow"}}}}
    result = breach.execute_in_process(run_config=config, instance=sqlite_instance)
    assert result.success
    manifest = result.output_for_node(BREACH_OP, "manifest")
    assert [len(c) for c in manifest.values()] == [3, 3, 1]  # not the fixed 64 of before


def test_the_step_resource_hands_out_the_cached_deployment(setup):
    _, _, deployment = setup
    plain = ExosphereDeployment()
    assert plain.deployment() is Deployment.load()  # no file read again in a step
    matching = ExosphereDeployment.matching(deployment)
    assert matching.prices_file == str(deployment.settings.prices_file)
    first = matching.deployment()
    assert first is matching.deployment()  # cached per process and setting
    assert first.prices is not None and first.prices.pools["zz"].cpu_hour == 3600.0


@pytest.mark.parametrize(("retries", "attempts"), [(None, 6), (1, 2)])
def test_satellite_as_op_retries_like_a_cluster_file(tmp_path, sqlite_instance, retries, attempts):
    """Left out, ``retries`` is a cluster file's default (5 retries: 6 attempts), not 3."""
    from dagster import job

    from exosphere_dagster import satellite_as_op

    config = {"label": "x", "log_dir": str(tmp_path), "fail_rate": 1.0}
    extra = {} if retries is None else {"retries": retries}
    op = satellite_as_op("satellite/test/record", config=config, delay=0.0, **extra)

    @job
    def one():
        op()

    result = one.execute_in_process(instance=sqlite_instance, raise_on_error=False)
    assert not result.success
    tried = [line for p in tmp_path.glob("attempt-failures-*") for line in p.read_text().split()]
    assert len(tried) == attempts


def test_every_resource_field_is_unset_by_default_and_names_its_variable():
    """The Launchpad shows each field's description: which ``EXOSPHERE_*`` variable applies
    when it is left unset."""
    for name, info in ExosphereDeployment.model_fields.items():
        assert info.default is None, name
        assert f"unset: EXOSPHERE_{name.upper()}" in (info.description or ""), name

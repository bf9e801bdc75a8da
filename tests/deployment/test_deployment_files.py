"""deployments/: the instance files against Dagster's own config schema, the Helm values against
the chart's values schema (the part we set) and against dagster.yaml, the workspace through
``dagster definitions validate``, and the Dockerfile through hadolint and a build of its context."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from dagster import DagsterInstance
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher
from dagster_postgres import DagsterPostgresStorage
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from exosphere_dagster.resolve.tags import SLA_TAG
from yaml_loader.tiers import TIER_NAMES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deployments"
BIN = Path(sys.executable).parent
PG_ENV = {
    "DAGSTER_PG_HOST": "db",
    "DAGSTER_PG_USERNAME": "u",
    "DAGSTER_PG_PASSWORD": "p",
    "DAGSTER_PG_DB": "d",
    "EXOSPHERE_COMPUTE_LOGS_BUCKET": "logs",
}


def _instance_yaml(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _class_config_ok(cls, config: dict) -> None:
    result = process_config(resolve_to_config_type(cls.config_type()), config)
    assert result.success, [e.message for e in result.errors]


def _tier_limits(entries: list[dict]) -> dict[str, int]:
    assert all(e["key"] == SLA_TAG for e in entries)
    return {e["value"]: e["limit"] for e in entries}


def test_production_instance_validates_against_dagster_schemas(tmp_path, monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # the instance schema, env included
    _class_config_ok(DagsterPostgresStorage, config["storage"]["postgres"])
    _class_config_ok(K8sRunLauncher, config["run_launcher"]["config"])
    _class_config_ok(QueuedRunCoordinator, config["run_coordinator"]["config"])
    _class_config_ok(S3ComputeLogManager, config["compute_logs"]["config"])
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["run_monitoring"]["enabled"] is True
    limits = _tier_limits(config["run_coordinator"]["config"]["tag_concurrency_limits"])
    assert set(limits) == set(TIER_NAMES)
    assert limits["6h"] > limits["12h"] > limits["24h"]
    assert sum(limits.values()) > config["run_coordinator"]["config"]["max_concurrent_runs"]


def test_local_instance_loads_with_the_tier_queue_and_run_monitoring(tmp_path):
    shutil.copy(DEPLOY / "dagster.local.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        assert set(_tier_limits(list(limits))) == set(TIER_NAMES)
        assert instance.run_monitoring_enabled
        assert "sqlite" in type(instance.run_storage).__name__.lower()


def _dequeue(home: Path) -> tuple[int, bool]:
    """(dequeue interval, dequeue in threads) of the instance in ``home``."""
    with DagsterInstance.from_config(str(home)) as instance:
        queue = instance.run_coordinator
        assert isinstance(queue, QueuedRunCoordinator)
        return queue.dequeue_interval_seconds, queue.dequeue_use_threads


def test_exosphere_dev_writes_its_launch_latency_instance_into_a_fresh_home(tmp_path, monkeypatch):
    """`exosphere dev` on a home without dagster.yaml writes DEV_INSTANCE (a dequeue each second,
    in threads); dagster.local.yaml has the same settings; an existing dagster.yaml is kept."""
    from click.testing import CliRunner

    from exosphere_dagster.entry import devserver
    from exosphere_dagster.entry.cli import main

    served: list[str] = []
    monkeypatch.setattr(devserver, "serve", lambda folder, port: served.append(folder) or 0)
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    result = CliRunner().invoke(main, ["dev", str(tmp_path / "clusters")])
    assert result.exit_code == 0, result.output
    assert served == [str(tmp_path / "clusters")]
    assert (home / "dagster.yaml").read_text() == devserver.DEV_INSTANCE
    assert _dequeue(home) == (1, True)  # Dagster's default: (5, False)
    local = tmp_path / "local"
    local.mkdir()
    shutil.copy(DEPLOY / "dagster.local.yaml", local / "dagster.yaml")
    assert _dequeue(local) == (1, True)

    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # the user's own
    assert CliRunner().invoke(main, ["dev", str(tmp_path / "clusters")]).exit_code == 0
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


# The part of the chart's values schema our values touch (see the file's $comment).
CHART_SCHEMA_SUBSET = json.loads((Path(__file__).parent / "chart_values_schema.json").read_text())


def render_instance(values: dict) -> dict:
    """The dagster.yaml sections the chart renders from our values (its configmap-instance
    template: camelCase values to snake_case instance keys)."""
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    s3 = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    return {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": queue["maxConcurrentRuns"],
                "tag_concurrency_limits": queue["tagConcurrencyLimits"],
                "dequeue_interval_seconds": queue["dequeueIntervalSeconds"],
                "dequeue_use_threads": queue["dequeueUseThreads"],
                "dequeue_num_workers": queue["dequeueNumWorkers"],
            },
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "cancel_timeout_seconds": monitoring["cancelTimeoutSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "compute_logs": {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": "S3ComputeLogManager",
            "config": {
                "bucket": s3["bucket"],
                "prefix": s3["prefix"],
                "upload_interval": s3["uploadInterval"],
                "skip_empty_files": s3["skipEmptyFiles"],
            },
        },
    }


def test_helm_values_fit_the_chart_and_render_the_production_instance(tmp_path):
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    jsonschema.validate(values, CHART_SCHEMA_SUBSET)
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "exosphere_dagster.definitions", "-a", "defs"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # run pods see clusters
    env = {e["name"]: e["value"] for e in deployment["env"]}
    mount = deployment["volumeMounts"][0]
    assert env["EXOSPHERE_CLUSTERS_DIR"] == mount["mountPath"]
    assert deployment["volumes"][0]["configMap"]["name"] == "exosphere-clusters"
    assert mount["name"] == deployment["volumes"][0]["name"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"

    rendered = render_instance(values)
    production = _instance_yaml("dagster.yaml")
    assert rendered["run_coordinator"] == production["run_coordinator"]
    assert rendered["run_monitoring"] == {
        "free_slots_after_run_end_seconds": 0,
        **production["run_monitoring"],
    }
    assert rendered["compute_logs"]["class"] == production["compute_logs"]["class"]
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    config, _ = dagster_instance_config(str(tmp_path))  # the rendered sections are valid
    _class_config_ok(QueuedRunCoordinator, config["run_coordinator"]["config"])
    _class_config_ok(S3ComputeLogManager, config["compute_logs"]["config"])
    env_file = dict(
        line.split("=", 1)
        for line in (DEPLOY / "helm" / "exosphere.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env_file["EXOSPHERE_EXECUTOR"] == "k8s"


@pytest.mark.slow
def test_dagster_definitions_validate_passes_with_the_workspace(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.local.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EXOSPHERE_CLUSTERS_DIR": str(ROOT / "examples"),
    }
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", str(DEPLOY / "workspace.yaml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Validation successful for code location exosphere_dagster.definitions" in output


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint") or str(BIN / "hadolint")
    result = subprocess.run(
        [hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_docker_context_builds_the_package_the_tests_install(tmp_path):
    """Copy what the Dockerfile COPYs (the context its .dockerignore leaves), build the wheel
    from it as `pip install .` in the image would, and compare it with the installed package."""
    text = (DEPLOY / "Dockerfile").read_text()
    copies = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
    sources = [s for c in copies for s in c]
    assert sources == [
        "pyproject.toml",
        "README.md",
        "constraints.txt",
        "yaml_loader",
        "satellite_ops",
        "exosphere_dagster",
    ], sources
    allowed = [
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    assert set(sources) <= set(allowed)
    from_line = next(line for line in text.splitlines() if line.startswith("ARG PYTHON_VERSION"))
    assert from_line.split("=")[1] == f"{sys.version_info.major}.{sys.version_info.minor}"

    context = tmp_path / "context"  # the wheel needs pyproject.toml, README.md and the packages
    context.mkdir()
    for source in sources:
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, context / source)
    offline = ["--no-build-isolation"] if _has("hatchling") else []  # hatchling is in [dev]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist")]
        + offline
        + [str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = next((tmp_path / "dist").glob("exosphere_dagster-*.whl"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(meta_name).decode()
    for package in ("exosphere_dagster", "satellite_ops", "yaml_loader"):
        assert f"{package}/__init__.py" in names or any(n.startswith(f"{package}/") for n in names)
    assert "exosphere_dagster/definitions.py" in names
    assert f"Version: {project['version']}" in metadata
    assert importlib.metadata.version("exosphere-dagster") == project["version"]
    runtime = {
        _req(line.split(": ", 1)[1])
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    }
    assert runtime == {_req(r) for r in project["dependencies"]}  # what [dev] installs too


def _build_args(text: str) -> dict[str, str]:
    return {
        name: value.strip('"')
        for name, _, value in (
            line.removeprefix("ARG ").partition("=")
            for line in text.splitlines()
            if line.startswith("ARG ")
        )
    }


def test_default_image_has_docling_on_cpu_torch_and_its_models():
    """The reference cluster parses PDFs with docling: the default build installs the [docling]
    extra, with torch from the CPU index at the version constraints.txt pins, and bakes in the
    standard pipeline's models where the satellite looks for them (DOCLING_CACHE_DIR/models)."""
    text = (DEPLOY / "Dockerfile").read_text()
    args = _build_args(text)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert args["EXTRAS"] == "docling" and "docling" in project["optional-dependencies"]
    assert {_req(r)[0] for r in project["optional-dependencies"]["docling"]} == {"docling"}
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    pins = [
        _req(line)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ("torch", "==2.13.0") in pins
    run = text[text.index("RUN pip install") :]
    assert '--extra-index-url "$TORCH_INDEX" --constraint constraints.txt' in run
    assert '".${EXTRAS:+[$EXTRAS]}"' in run
    assert set(args["DOCLING_MODELS"].split()) == {"layout", "tableformer"}
    assert "docling-tools models download $DOCLING_MODELS" in run
    assert "DOCLING_CACHE_DIR=/opt/docling" in text


def test_docling_models_in_the_image_are_where_the_satellite_looks(monkeypatch, tmp_path):
    """``docling-tools models download`` (no ``-o``) writes under DOCLING_CACHE_DIR/models, and
    the satellite looks there when no artifacts-path or DOCLING_ARTIFACTS_PATH is set."""
    docling_settings = pytest.importorskip("docling.datamodel.settings")
    from satellite_ops.helpers import docling_converter

    monkeypatch.setenv("DOCLING_CACHE_DIR", str(tmp_path / "docling"))
    monkeypatch.setattr(docling_settings, "settings", docling_settings.AppSettings())
    assert docling_converter.default_models_dir() == tmp_path / "docling" / "models"


def _req(text: str) -> tuple[str, str]:
    requirement = Requirement(text)
    return requirement.name.lower(), str(SpecifierSet(str(requirement.specifier)))


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True

"""The plan cache: a folder loaded again reads its plans back; any change to a file, to a
satellite plugin or to the settings that turn it off makes it plan again; a broken or
unreadable entry is only a miss.

A process keys plans by the source on disk, so a plugin module written after the process began
turns the cache off in that process (plan_inputs.py): tests that change a plugin load the folder
in a fresh process each time, as a code location reload does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clusters import cluster, satellite_entry, write_cluster
from exosphere_dagster.definitions import build_definitions
from exosphere_dagster.resolve import catalog as catalog_module
from exosphere_dagster.resolve import plan_cache
from exosphere_dagster.resolve.catalog import builtin_registry, load_catalog
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.plan_cache import cache_folder, open_plan_cache
from exosphere_dagster.resolve.plan_inputs import fingerprint
from exosphere_dagster.resolve.settings import Settings, read_settings
from satellite_ops.registry import SatelliteRegistry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
LOAD = """
import json, sys
from exosphere_dagster.resolve.catalog import load_catalog
catalog = load_catalog([sys.argv[1]], log=False)
print(json.dumps({"from_cache": catalog.from_cache,
                  "jobs": sorted(p.job_name for p in catalog.plans),
                  "errors": [str(e) for e in catalog.errors]}))
"""
PLUGIN = """
from pydantic import BaseModel
from satellite_ops import satellite

class GreetConfig(BaseModel):
    greeting: str
{extra}

@satellite("satellite/plugin/greet", config=GreetConfig)
def greet(config: GreetConfig, input: dict) -> list[dict]:
    return [{{"text": config.greeting}}]
"""


def webhook(identifier: str, url: str = "https://example.com/hook") -> dict:
    entry = satellite_entry("satellite/exospherehost/call-webhook", "call", {"url": url})
    return cluster(f"cluster/{identifier}", [entry], title=f"Cluster {identifier}")


def fresh_registry() -> SatelliteRegistry:
    """What the default registry is in a fresh process (built-ins, then the environment's
    plugins), without the satellites other tests of this process registered: a module a test
    wrote after the process began turns the cache off (plan_inputs.py), as it should."""
    registry = builtin_registry()
    registry.load_plugins()
    return registry


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plan-cache"
    monkeypatch.setenv("EXOSPHERE_PLAN_CACHE_DIR", str(folder))
    monkeypatch.delenv("EXOSPHERE_PLAN_CACHE", raising=False)
    monkeypatch.delenv("EXOSPHERE_SATELLITE_MODULES", raising=False)
    monkeypatch.setattr(catalog_module, "registry_with_plugins", fresh_registry)
    assert fingerprint(fresh_registry()) is not None, (
        "exosphere's source changed while this test process ran: the cache is off in it"
    )
    return folder


@pytest.fixture
def planned_files(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every YAML file planned (not read back), in order."""
    calls: list[Path] = []
    real, real_text = plan_cache.load, plan_cache.load_text

    def counting_load(path):
        calls.append(Path(path))
        return real(path)

    def counting_load_text(text, file):  # a miss plans the bytes it read once
        calls.append(Path(file))
        return real_text(text, file)

    monkeypatch.setattr(plan_cache, "load", counting_load)
    monkeypatch.setattr(plan_cache, "load_text", counting_load_text)
    monkeypatch.setattr(catalog_module, "load", counting_load)
    return calls


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    write_cluster(clusters, "a.yml", webhook("acme/a"))
    write_cluster(clusters, "b.yml", webhook("acme/b"))
    return clusters


def test_a_second_load_reads_the_plans_back(folder, cache_dir, planned_files):
    first = load_catalog([folder], log=False)
    second = load_catalog([folder], log=False)

    assert (first.from_cache, second.from_cache) == (0, 2)
    assert planned_files == [folder / "a.yml", folder / "b.yml"]  # the first load's only
    assert second.plans == first.plans
    assert second.executions == first.executions
    assert len(list(cache_dir.glob("*.plan"))) == 2


def test_a_process_that_keeps_plans_in_memory_reads_no_entry_back(
    folder, cache_dir, planned_files, monkeypatch
):
    """A code server rebuilding in place (keep_plans_in_memory): an unchanged file's plan is
    the last load's object, not read from disk (the entries are spoiled here to show it); a
    changed file is still planned again."""
    in_memory = threading.Event()
    in_memory.set()
    monkeypatch.setattr(plan_cache, "_IN_MEMORY", in_memory)
    monkeypatch.setattr(plan_cache, "_REMEMBERED", {})
    first = load_catalog([folder], log=False)
    for entry in cache_dir.glob("*.plan"):
        entry.write_bytes(b"spoiled")
    write_cluster(folder, "b.yml", webhook("acme/b", url="https://example.com/other"))

    second = load_catalog([folder], log=False)

    assert second.from_cache == 1
    assert second.plans[0] is first.plans[0]
    assert planned_files == [folder / "a.yml", folder / "b.yml", folder / "b.yml"]
    assert len(plan_cache._REMEMBERED) == 2, "only the last load's entries are kept"


def test_a_changed_file_is_planned_again(folder, cache_dir, planned_files):
    load_catalog([folder], log=False)
    write_cluster(folder, "b.yml", webhook("acme/b", url="https://example.com/other"))

    again = load_catalog([folder], log=False)

    assert again.from_cache == 1
    assert planned_files[2:] == [folder / "b.yml"]
    b = next(p for p in again.plans if p.job_name == "acme__b")
    assert b.nodes[0].config["url"] == "https://example.com/other"


def test_the_same_bytes_at_another_path_are_planned_for_that_path(folder, cache_dir):
    load_catalog([folder], log=False)
    (folder / "copy").mkdir()
    (folder / "copy" / "a.yml").write_bytes((folder / "a.yml").read_bytes())

    again = load_catalog([folder / "copy"], log=False)

    assert again.from_cache == 0
    assert again.plans[0].file == str(folder / "copy" / "a.yml")


def test_turned_off_it_plans_every_time_and_writes_nothing(
    folder, cache_dir, planned_files, monkeypatch
):
    monkeypatch.setenv("EXOSPHERE_PLAN_CACHE", "0")
    load_catalog([folder], log=False)
    again = load_catalog([folder], log=False)

    assert again.from_cache == 0
    assert len(planned_files) == 4
    assert not cache_dir.exists()


def test_a_broken_file_shows_the_same_located_errors_from_the_cache(folder, cache_dir):
    broken = folder / "broken.yml"
    broken.write_text(
        "version: 0.0.1b\ncluster:\n  identifier: cluster/acme/broken\n  sla: 7h\n"
        "  trigger: api-call\n  satellites: []\n"
    )

    first = load_catalog([folder], log=False)
    second = load_catalog([folder], log=False)

    assert second.from_cache == 3
    assert second.broken == first.broken
    assert [str(e) for e in second.broken[str(broken)]][0].startswith(f"{broken}:4:8: cluster.sla")


def test_a_corrupt_or_foreign_entry_is_a_miss_and_is_replaced(folder, cache_dir, planned_files):
    first = load_catalog([folder], log=False)
    entries = sorted(cache_dir.glob("*.plan"))
    entries[0].write_bytes(b"\x80\x05 not a pickle")
    entries[1].write_bytes(entries[1].read_bytes()[:100])  # truncated

    second = load_catalog([folder], log=False)
    third = load_catalog([folder], log=False)

    assert (second.from_cache, third.from_cache) == (0, 2)
    assert second.plans == first.plans
    assert len(planned_files) == 4


def test_python_cluster_files_are_never_cached(cache_dir, planned_files):
    python_file = EXAMPLES / "reference_pipeline.py"
    first = load_catalog([python_file], log=False)
    second = load_catalog([python_file], log=False)

    assert first.plans and second.from_cache == 0
    assert not cache_dir.exists()


def test_the_least_recently_used_entries_go_beyond_the_size_limit(folder, cache_dir):
    settings = Settings(plan_cache_dir=cache_dir)
    cache = open_plan_cache(Deployment(settings=settings), fresh_registry())
    cache.planned(folder / "a.yml")
    os.utime(next(cache_dir.glob("*.plan")), (1, 1))  # long unused
    cache.planned(folder / "b.yml")
    cache.max_bytes = max(p.stat().st_size for p in cache_dir.glob("*.plan"))

    cache.prune()

    kept = open_plan_cache(Deployment(settings=settings), fresh_registry())
    kept.planned(folder / "b.yml")
    kept.planned(folder / "a.yml")
    assert (kept.hits, kept.misses) == (1, 1)


def test_a_plugin_written_after_the_process_began_turns_the_cache_off(tmp_path, monkeypatch):
    own_registry = (
        "from satellite_ops.registry import SatelliteRegistry\nMINE = SatelliteRegistry()\n"
    )
    text = PLUGIN.format(extra="").replace("GreetConfig)", "GreetConfig, registry=MINE)")
    (tmp_path / "late_plugin.py").write_text(own_registry + text)  # not the default registry
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = SatelliteRegistry()
    registry.load_modules(["late_plugin"], source="test")

    assert fingerprint(registry) is None
    assert (
        open_plan_cache(Deployment(settings=Settings(plan_cache_dir=tmp_path / "c")), registry)
        is None
    )


def saved_before(path: Path, text: str) -> None:
    """Write ``text``, dated 10 s ago: a file saved before the next process starts (one dated
    in its last 2 s, the coarseness of a process's start time, turns the cache off)."""
    path.write_text(text)
    then = time.time() - 10
    os.utime(path, (then, then))


def test_a_changed_plugin_module_is_a_miss_in_the_next_process(tmp_path):
    plugin = tmp_path / "greet_plugin.py"
    saved_before(plugin, PLUGIN.format(extra=""))
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    uses = satellite_entry("satellite/plugin/greet", "hello", {"greeting": "hi"})
    write_cluster(clusters, "greet.yml", cluster("cluster/acme/greet", [uses]))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "EXOSPHERE_SATELLITE_MODULES": "greet_plugin",
        "EXOSPHERE_PLAN_CACHE_DIR": str(tmp_path / "plan-cache"),
    }
    env.pop("EXOSPHERE_PLAN_CACHE", None)

    def reload() -> dict:
        done = subprocess.run(
            [sys.executable, "-c", LOAD, str(clusters)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(done.stdout)

    first, second = reload(), reload()
    saved_before(plugin, PLUGIN.format(extra="    # a comment: the source changed, not the model"))
    after_comment = reload()
    saved_before(plugin, PLUGIN.format(extra="    language: str  # now required"))
    after_model = reload()

    assert [r["from_cache"] for r in (first, second, after_comment)] == [0, 1, 0]
    assert first["jobs"] == second["jobs"] == after_comment["jobs"] == ["acme__greet"]
    assert after_model["from_cache"] == 0
    assert after_model["jobs"] == []
    assert any("language" in error for error in after_model["errors"])


def test_the_examples_build_the_same_jobs_and_ops_with_the_cache(cache_dir, monkeypatch):
    def shape() -> dict[str, list[str]]:
        repo = build_definitions(EXAMPLES).get_repository_def()
        return {job.name: sorted(job.graph.node_dict) for job in repo.get_all_jobs()}

    cold, warm = shape(), shape()
    assert load_catalog([EXAMPLES], log=False).from_cache > 0
    monkeypatch.setenv("EXOSPHERE_PLAN_CACHE", "0")
    off = shape()

    assert cold == warm == off
    assert "invalid__structured_pdfs" in warm  # the example of a broken file, shown the same
    assert sum(len(ops) for ops in warm.values()) > 10


def test_the_cache_folder_follows_the_settings_then_dagster_home(tmp_path, monkeypatch):
    monkeypatch.delenv("EXOSPHERE_PLAN_CACHE_DIR", raising=False)  # the session's (conftest)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder(
        Deployment(settings=Settings(plan_cache_dir=tmp_path / "own")), str(tmp_path)
    ) == (tmp_path / "own")
    assert cache_folder(Deployment(settings=Settings()), str(tmp_path / "home")) == (
        tmp_path / "home" / "exosphere" / "plans"
    )
    assert (
        cache_folder(Deployment(settings=Settings()), None)
        == tmp_path / "xdg" / "exosphere-dagster" / "plans"
    )


def test_the_settings_are_read_from_the_environment_and_documented(monkeypatch):
    monkeypatch.setenv("EXOSPHERE_PLAN_CACHE", "0")
    monkeypatch.setenv("EXOSPHERE_PLAN_CACHE_DIR", "/somewhere")
    monkeypatch.setenv("EXOSPHERE_PLAN_CACHE_MAX_MB", "12.5")
    settings = read_settings()
    assert (settings.plan_cache, settings.plan_cache_dir) == (False, Path("/somewhere"))
    assert settings.plan_cache_max_mb == 12.5
    guide = (ROOT / "docs" / "deployment.md").read_text()
    for name in ("EXOSPHERE_PLAN_CACHE", "EXOSPHERE_PLAN_CACHE_DIR", "EXOSPHERE_PLAN_CACHE_MAX_MB"):
        assert f"`{name}`" in guide, name

"""The clusters' part of a code-location reload, with and without the plan cache (part 1 of
bench/location_reload.py). No ``__main__``: location_reload.py runs it.

Each load runs in a fresh interpreter, as each code server does: ``load_catalog`` of the folder,
timed after the imports, then (for "off" and "changed") the Dagster definitions built from the
catalog and every job listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from load_clusters import cluster_text

CHILD = """
import json, sys, time
started = time.perf_counter()
from exosphere_dagster.resolve.catalog import load_catalog
imported = time.perf_counter()
catalog = load_catalog([sys.argv[1]], log=False)
loaded = time.perf_counter()
report = {"import_s": imported - started, "catalog_s": loaded - imported,
          "from_cache": catalog.from_cache, "plans": len(catalog.plans)}
if sys.argv[2] == "definitions":
    from exosphere_dagster.definitions import clusters_definitions
    from exosphere_dagster.resolve.catalog import registry_with_plugins
    registry = registry_with_plugins()
    built = time.perf_counter()
    defs = clusters_definitions(catalog.plans, catalog.broken, registry,
                                executions=catalog.executions)
    jobs = defs.get_repository_def().get_all_jobs()
    report["definitions_s"] = time.perf_counter() - built
status = open("/proc/self/status").read()
report["rss_mb"] = int(status.split("VmRSS:")[1].split()[0]) / 1024
print(json.dumps(report))
"""
RUNS = ("off", "cold", "warm", "changed")  # in this order, each a fresh process


@dataclass
class Load:
    catalog_s: float
    from_cache: int
    rss_mb: float
    definitions_s: float | None


def load_in_fresh_process(folder: Path, env: dict[str, str], definitions: bool) -> Load:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), "definitions" if definitions else "catalog"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"loading {folder} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Load(
        found["catalog_s"], found["from_cache"], found["rss_mb"], found.get("definitions_s")
    )


def measure_catalog(files: int, satellites: int) -> dict[str, Load]:
    """The four loads of a folder of ``files`` clusters: "off", "cold", "warm", "changed"."""
    with tempfile.TemporaryDirectory(prefix="exosphere-bench-") as tmp:
        folder, cache = Path(tmp) / "clusters", Path(tmp) / "plan-cache"
        folder.mkdir()
        for n in range(files):
            (folder / f"cluster-{n:04d}.yml").write_text(cluster_text(n, satellites))
        env = {**os.environ, "EXOSPHERE_PLAN_CACHE_DIR": str(cache), "EXOSPHERE_PLAN_CACHE": "1"}
        loads = {"off": load_in_fresh_process(folder, {**env, "EXOSPHERE_PLAN_CACHE": "0"}, True)}
        loads["cold"] = load_in_fresh_process(folder, env, False)
        loads["warm"] = load_in_fresh_process(folder, env, False)
        changed = folder / "cluster-0000.yml"
        changed.write_text(changed.read_text().replace("title: Generated", "title: Changed"))
        loads["changed"] = load_in_fresh_process(folder, env, True)
    return loads


def report(results: dict[int, dict[str, Load]]) -> list[str]:
    """The table of seconds per size and run, and the ratios that say whether it is flat."""
    lines = [
        f"{'files':>6} {'off s':>7} {'cold s':>7} {'warm s':>7} {'changed s':>10} "
        f"{'from cache':>10} {'changed/off':>11} {'defs s':>7} {'RSS off/changed MB':>19}"
    ]
    for files, loads in results.items():
        off, changed = loads["off"], loads["changed"]
        lines.append(
            f"{files:6} {off.catalog_s:7.2f} {loads['cold'].catalog_s:7.2f} "
            f"{loads['warm'].catalog_s:7.2f} {changed.catalog_s:10.2f} "
            f"{changed.from_cache:10} {changed.catalog_s / off.catalog_s:11.2f} "
            f"{changed.definitions_s or 0:7.2f} {off.rss_mb:9.0f}/{changed.rss_mb:.0f}"
        )
    small, large = min(results), max(results)
    if small != large:
        a, b = results[small], results[large]
        lines.append(
            f"{large} / {small} files, load_catalog after one change: with the cache "
            f"{b['changed'].catalog_s / a['changed'].catalog_s:.1f}x, without "
            f"{b['off'].catalog_s / a['off'].catalog_s:.1f}x (files: {large / small:.0f}x; "
            f"flat: 1.0); Dagster's definitions and job list: "
            f"{(b['changed'].definitions_s or 0) / (a['changed'].definitions_s or 1):.1f}x"
        )
    return lines

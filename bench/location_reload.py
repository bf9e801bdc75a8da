"""Reload of a code location after one file changes, with 10, 100 and 1,000 cluster files: the clusters' part (with and without the plan cache) and the whole dev server.

Part 1, the catalog (no server): for each size a generated folder (bench/load_clusters.py's
clusters, ``--satellites`` each) is loaded by fresh processes, as each code server does on a
reload: ``load_catalog`` with the plan cache off; with an empty cache (cold); again with
nothing changed (warm); and after one file's title changed (the reload a user waits for). Each
process reports its ``load_catalog`` seconds, the files read back from the cache and its RSS;
the "off" and "changed" processes also build the Dagster definitions from the catalog and list
every job (what the code server does next, ``get_all_jobs``), which no cache of ours removes.
Printed: seconds per size, the ratio of 1,000 to 10 files, and cached vs uncached at each size.

Part 2, the dev server (``--server-sizes``, empty to skip): ``exosphere dev`` serves the folder
on a SQLite ``DAGSTER_HOME``, with the plan cache on and off. Once the webserver lists every
job, the resident memory (VmRSS from /proc) of every process of the tree is read: the
webserver, the code server (``dagster api grpc``, where the clusters are built), the daemon and
the two launchers. Then one file's title changes, and the time from that write to the moment
the webserver shows the new description of that file's job (GraphQL, polled every 0.1 s) is the
reload: ``exosphere dev``'s watcher sees the change (it polls the folder every second) and asks
exosphere's code server to reload, which rebuilds the changed file's cluster in place and takes
a new id; the webserver and the daemon then load the location again (every job's snapshot).
When the code server logged its rebuild is read from ``exosphere dev``'s log (the rest of the
reload is Dagster's), and the code server's RSS after the reload.

    .venv/bin/python bench/location_reload.py [--sizes 10,100,1000] [--server-sizes 10,100]
        [--satellites 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from catalog_reload import measure_catalog, report
from cli_runs import Workspace, process_tree, rss_mb, stop_group, workspace
from exosphere_dagster.entry.devserver import free_port
from load_clusters import cluster_text

LOCATION = "exosphere_dagster.definitions"
JOB_COUNT = '{ repositoryOrError(repositorySelector: {repositoryName: "__repository__", repositoryLocationName: "%s"}) { ... on Repository { jobs { name } } } }'  # noqa: E501
DESCRIPTION = '{ pipelineOrError(params: {pipelineName: "%s", repositoryName: "__repository__", repositoryLocationName: "%s"}) { ... on Pipeline { description } } }'  # noqa: E501
REBUILT = "code location rebuilt in place"  # the code server's log line (code_server.py)
KINDS = (  # (part of the command line, what the process is), first match wins
    ("cli code-server", "code server"),  # exosphere's own (exosphere_dagster/entry/code_server.py)
    ("dagster api grpc", "code server"),
    ("dagster_webserver", "webserver"),
    ("dagster._daemon", "daemon"),
    ("dagster_dg_cli", "dg dev"),
    ("exosphere", "exosphere dev"),
)


@dataclass
class Size:
    files: int
    cache: bool
    started_s: float
    reload_s: float
    rss: dict[str, float]  # process kind -> MB (summed over processes of that kind)
    code_server_after_mb: float
    rebuilt_s: float | None  # when the code server logged its rebuild (the rest is Dagster's)

    @property
    def total(self) -> float:
        return sum(self.rss.values())


def query(port: int, text: str) -> dict:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": text}, timeout=600)
    return response.json().get("data") or {}


def wait_for(check, what: str, server: subprocess.Popen, timeout: float = 3600) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise SystemExit(f"exosphere dev exited ({server.returncode}) before {what}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if check():
                return time.perf_counter() - started
        time.sleep(0.1)
    raise SystemExit(f"{what} not reached in {timeout:.0f} s")


def rss_by_kind(root: int) -> dict[str, float]:
    found: dict[str, float] = {}
    for pid, command in process_tree(root).items():
        kind = next((k for part, k in KINDS if part in command), "other")
        found[kind] = found.get(kind, 0.0) + rss_mb(pid)
    return found


@contextlib.contextmanager
def dev_server(ws: Workspace, port: int, cache: bool) -> Iterator[subprocess.Popen]:
    command = [str(Path(sys.executable).with_name("exosphere")), "dev", str(ws.clusters)]
    log = (ws.home / "dev.log").open("w")  # read it when the server dies
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env={**ws.env(), "EXOSPHERE_PLAN_CACHE": "1" if cache else "0"},
        cwd=ws.home,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        stop_group(proc, timeout=30)
        if proc.returncode not in (0, -signal.SIGTERM):
            print((ws.home / "dev.log").read_text()[-3000:], file=sys.stderr)
        log.close()


def measure(files: int, satellites: int, cache: bool) -> Size:
    with workspace() as ws:
        for n in range(files):
            (ws.clusters / f"cluster-{n:04d}.yml").write_text(cluster_text(n, satellites))
        port = free_port()
        with dev_server(ws, port, cache) as proc:
            jobs = lambda: query(port, JOB_COUNT % LOCATION)["repositoryOrError"]["jobs"]  # noqa: E731
            started = wait_for(lambda: len(jobs()) >= files, f"{files} jobs listed", proc)
            time.sleep(2)  # let the servers settle before reading their memory
            rss = rss_by_kind(proc.pid)
            changed = ws.clusters / "cluster-0000.yml"
            text = changed.read_text()
            title = "Generated cluster 0, changed"
            job = "bench__cluster_0"
            changed.write_text(text.replace("title: Generated cluster 0", f"title: {title}"))

            written, rebuilt = time.perf_counter(), []

            def new_version() -> bool:
                if not rebuilt and REBUILT in (ws.home / "dev.log").read_text(errors="replace"):
                    rebuilt.append(time.perf_counter() - written)
                found = query(port, DESCRIPTION % (job, LOCATION))["pipelineOrError"]
                return title in (found.get("description") or "")

            reload_s = wait_for(new_version, "the changed job", proc)
            time.sleep(2)
            after = rss_by_kind(proc.pid).get("code server", 0.0)
    return Size(files, cache, started, reload_s, rss, after, rebuilt[0] if rebuilt else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="folder sizes, catalog part")
    parser.add_argument("--server-sizes", default="10,100", help="folder sizes, dev server part")
    parser.add_argument("--satellites", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; clusters of {args.satellites} satellites", flush=True)
    catalog = {}
    for files in _sizes(args.sizes):
        catalog[files] = measure_catalog(files, args.satellites)
        print(f"  catalog of {files} files measured", flush=True)
    if catalog:
        print(
            "\nPart 1: load_catalog in a fresh process, seconds (plan cache off, cold, warm, "
            "one file changed)"
        )
        print("\n".join(report(catalog)), flush=True)
    results = []
    for files in _sizes(args.server_sizes):
        for cache in (False, True):
            results.append(measure(files, args.satellites, cache))
            print_size(results[-1])
    if results:
        print_servers(results)


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def print_size(result: Size) -> None:
    rss = ", ".join(f"{k} {v:.0f}" for k, v in sorted(result.rss.items()))
    print(
        f"  {result.files:5} files, cache {'on ' if result.cache else 'off'}: up in "
        f"{result.started_s:6.1f} s, reload {result.reload_s:6.1f} s; RSS MB: {rss}; total "
        f"{result.total:.0f}; code server after reload {result.code_server_after_mb:.0f}; "
        f"code server rebuilt after {result.rebuilt_s or float('nan'):.1f} s",
        flush=True,
    )


def print_servers(results: list[Size]) -> None:
    print("\nPart 2: exosphere dev, one file changed")
    print(
        f"{'files':>6} {'cache':>5} {'start s':>8} {'reload s':>9} {'code server MB':>15} "
        f"{'webserver MB':>13} {'tree MB':>8}"
    )
    for r in results:
        print(
            f"{r.files:6} {'on' if r.cache else 'off':>5} {r.started_s:8.1f} {r.reload_s:9.1f} "
            f"{r.rss.get('code server', 0):15.0f} {r.rss.get('webserver', 0):13.0f} {r.total:8.0f}"
        )
    for cache in (False, True):
        runs = [r for r in results if r.cache == cache]
        base, last = runs[0], runs[-1]
        if last.files != base.files:
            print(
                f"cache {'on ' if cache else 'off'}: {last.files} / {base.files} files: reload "
                f"{last.reload_s / base.reload_s:.2f}x, code server RSS "
                f"{last.rss.get('code server', 0) / base.rss.get('code server', 1):.2f}x, "
                f"tree RSS {last.total / base.total:.2f}x (flat: 1.00)"
            )
    for files in sorted({r.files for r in results}):
        on = next(r for r in results if r.files == files and r.cache)
        off = next(r for r in results if r.files == files and not r.cache)
        print(f"{files} files: reload with the cache / without: {on.reload_s / off.reload_s:.2f}")


if __name__ == "__main__":
    main()

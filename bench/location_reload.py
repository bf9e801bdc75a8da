"""Memory of the code location and its reload after one file changes, with 10, 100 and 1,000 cluster files.

For each size, ``exosphere dev`` serves a generated folder (bench/load_clusters.py's clusters,
``--satellites`` each) on a SQLite ``DAGSTER_HOME``. Once the webserver lists every job, the
resident memory (VmRSS from /proc) of every process of the tree is read: the webserver, the
code server (``dagster api grpc``, where the clusters are built), the daemon and the two
launchers. Then one file's title changes, and the time from that write to the moment the
webserver shows the new description of that file's job (GraphQL, polled every 0.1 s) is the
reload: ``exosphere dev``'s watcher sees the change (it polls the folder every second), asks
the webserver to reload, which starts a new code server that builds the folder again and sends
the repository's snapshot. The code server's RSS after the reload is read too.

Printed per size: RSS by process, the tree's total, the start time and the reload time, and
their ratio to the smallest size. A flat location would keep both near 1.

    .venv/bin/python bench/location_reload.py [--sizes 10,100,1000] [--satellites 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from cli_runs import Workspace, process_tree, rss_mb, stop_group, workspace
from load_clusters import cluster_text

LOCATION = "exosphere_dagster.definitions"
JOB_COUNT = '{ repositoryOrError(repositorySelector: {repositoryName: "__repository__", repositoryLocationName: "%s"}) { ... on Repository { jobs { name } } } }'  # noqa: E501
DESCRIPTION = '{ pipelineOrError(params: {pipelineName: "%s", repositoryName: "__repository__", repositoryLocationName: "%s"}) { ... on Pipeline { description } } }'  # noqa: E501
KINDS = (  # (part of the command line, what the process is), first match wins
    ("dagster api grpc", "code server"),
    ("dagster_webserver", "webserver"),
    ("dagster._daemon", "daemon"),
    ("dagster_dg_cli", "dg dev"),
    ("exosphere", "exosphere dev"),
)


@dataclass
class Size:
    files: int
    started_s: float
    reload_s: float
    rss: dict[str, float]  # process kind -> MB (summed over processes of that kind)
    code_server_after_mb: float

    @property
    def total(self) -> float:
        return sum(self.rss.values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
def dev_server(ws: Workspace, port: int) -> Iterator[subprocess.Popen]:
    command = [str(Path(sys.executable).with_name("exosphere")), "dev", str(ws.clusters)]
    log = (ws.home / "dev.log").open("w")  # read it when the server dies
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env=ws.env(),
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


def measure(files: int, satellites: int) -> Size:
    with workspace() as ws:
        for n in range(files):
            (ws.clusters / f"cluster-{n:04d}.yml").write_text(cluster_text(n, satellites))
        port = free_port()
        with dev_server(ws, port) as proc:
            jobs = lambda: query(port, JOB_COUNT % LOCATION)["repositoryOrError"]["jobs"]  # noqa: E731
            started = wait_for(lambda: len(jobs()) >= files, f"{files} jobs listed", proc)
            time.sleep(2)  # let the servers settle before reading their memory
            rss = rss_by_kind(proc.pid)
            changed = ws.clusters / "cluster-0000.yml"
            text = changed.read_text()
            title = "Generated cluster 0, changed"
            job = "bench__cluster_0"
            changed.write_text(text.replace("title: Generated cluster 0", f"title: {title}"))

            def new_version() -> bool:
                found = query(port, DESCRIPTION % (job, LOCATION))["pipelineOrError"]
                return title in (found.get("description") or "")

            reload_s = wait_for(new_version, "the changed job", proc)
            time.sleep(2)
            after = rss_by_kind(proc.pid).get("code server", 0.0)
    return Size(files, started, reload_s, rss, after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--satellites", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{os.cpu_count()} CPUs; clusters of {args.satellites} satellites", flush=True)
    results = []
    for files in sizes:
        result = measure(files, args.satellites)
        rss = ", ".join(f"{k} {v:.0f}" for k, v in sorted(result.rss.items()))
        print(
            f"  {files:5} files: up in {result.started_s:6.1f} s, reload {result.reload_s:6.1f} s; "
            f"RSS MB: {rss}; total {result.total:.0f}; code server after reload "
            f"{result.code_server_after_mb:.0f}",
            flush=True,
        )
        results.append(result)
    base = results[0]
    print()
    print(
        f"{'files':>6} {'start s':>8} {'reload s':>9} {'code server MB':>15} {'webserver MB':>13} {'tree MB':>8}"
    )  # noqa: E501
    for r in results:
        print(
            f"{r.files:6} {r.started_s:8.1f} {r.reload_s:9.1f} {r.rss.get('code server', 0):15.0f} "
            f"{r.rss.get('webserver', 0):13.0f} {r.total:8.0f}"
        )
    last = results[-1]
    print()
    print(
        f"{last.files} / {base.files} files: reload {last.reload_s / base.reload_s:.2f}x, "
        f"code server RSS {last.rss.get('code server', 0) / base.rss.get('code server', 1):.2f}x, "
        f"webserver RSS {last.rss.get('webserver', 0) / base.rss.get('webserver', 1):.2f}x, "
        f"tree RSS {last.total / base.total:.2f}x (flat: 1.00)"
    )


if __name__ == "__main__":
    main()

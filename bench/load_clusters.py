"""Loading cost: 200 cluster files of 20 satellites each, loaded and planned, against a 2 s target.

Each generated file lists files from S3, then 19 call-webhook satellites whose config templates
read earlier satellites' outputs (some through explicit parents) and declared secrets, plus a
failure branch and a log sink: every stage of the loader has work to do (YAML + source map,
pydantic models, registry lookup and config validation, template compilation, reference checks,
graph). The baseline, measured in the same run, is plain ``yaml.safe_load`` of the same files
(PyYAML's pure-Python parser), with ``yaml.load(..., CSafeLoader)`` (libyaml, which the loader
uses when PyYAML has it) alongside. Best of 3 each, wall-clock and CPU time: on a busy machine
the CPU figure is the steadier one. The figures are written to bench/results/load_clusters.txt.

    .venv/bin/python bench/load_clusters.py [--files 200] [--satellites 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pydantic
import yaml

from satellite_ops.registry import default_registry
from yaml_loader import load, plan

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "load_clusters.txt"
TARGET_SECONDS = 2.0
C_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ROUNDS = 3

HEAD = """\
version: 0.0.1b
cluster:
  identifier: bench/cluster-{n}
  title: Generated cluster {n}
  sla: {sla}
  trigger:
    cron: "{minute} * * * *"
    timezone: Europe/Berlin
  retries: 3
  secrets:
    - API_TOKEN: env:API_TOKEN
    - AWS_ACCESS_KEY: env:AWS_ACCESS_KEY
    - AWS_SECRET_KEY: aws-secretsmanager:bench/aws#secret
  satellites:
    - name: List input files
      uses: satellite/exospherehost/get-files-from-s3
      identifier: step-0
      config:
        bucket: bench-input-{n}
        prefix: incoming/
        extension: pdf
        secrets:
          - AWS_ACCESS_KEY: ${{{{ secrets.AWS_ACCESS_KEY }}}}
          - AWS_SECRET_KEY: ${{{{ secrets.AWS_SECRET_KEY }}}}
"""

STEP = """\
    - name: Step {i}
      uses: satellite/exospherehost/call-webhook
      identifier: step-{i}
{parents}      retries: {retries}
      delay: {delay}s
      config:
        url: https://api.example.com/v1/clusters/{n}/steps/{i}?file=$${{{{ satellites.step-0.output.file-path }}}}
        method: POST
        headers:
          - Authorization: Bearer ${{{{ secrets.API_TOKEN }}}}
          - X-Run: ${{{{ run.id }}}}
        body:
          previous: ${{{{ satellites.step-{prev}.output }}}}
          cluster: ${{{{ cluster.identifier }}}}
          note: |
            Step {i} of cluster {n}, reading step {prev}
            (${{{{ format('{{0}}/{{1}}', satellites.step-0.output.file-name, run.id) }}}}).
        timeout-seconds: 20
        expected-status: [200, 201, 202]
"""

TAIL = """\
  failure:
    from: step-1
    satellites:
      - uses: satellite/exospherehost/call-webhook
        identifier: report-failure
        config:
          url: https://alerts.example.com/failed
          body:
            error: ${{ failure.error }}
            satellite: ${{ failure.satellite }}
            file: $${{ satellites.step-0.output.uri }}
  logs:
    satellites:
      - uses: satellite/exospherehost/call-webhook
        identifier: ship-logs
        config:
          url: https://logs.example.com/ingest
          headers:
            - Authorization: Bearer ${{ secrets.API_TOKEN }}
"""


def cluster_text(n: int, satellites: int) -> str:
    text = HEAD.format(n=n, sla=("6h", "12h", "24h")[n % 3], minute=n % 60)
    for i in range(1, satellites):
        # every fourth step reads two satellites back and names its parent explicitly
        prev = max(i - 2, 0) if i % 4 == 0 else i - 1
        parents = f"      parents: [step-{prev}]\n" if i % 4 == 0 else ""
        text += STEP.format(n=n, i=i, prev=prev, parents=parents, retries=i % 6, delay=1 + i % 5)
    return text + TAIL


def write_clusters(folder: Path, files: int, satellites: int) -> list[Path]:
    paths = []
    for n in range(files):
        path = folder / f"cluster-{n:03d}.yml"
        path.write_text(cluster_text(n, satellites))
        paths.append(path)
    return paths


def best_of(rounds: int, work: Callable[[], None]) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds over ``rounds`` runs."""
    wall = cpu = float("inf")
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        work()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--satellites", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="do not update the results file")
    args = parser.parse_args()

    registry = default_registry()
    with tempfile.TemporaryDirectory(prefix="exosphere-bench-") as tmp:
        paths = write_clusters(Path(tmp), args.files, args.satellites)
        size = sum(p.stat().st_size for p in paths)

        plans = [plan(load(p), registry) for p in paths]  # warm-up, and a check
        assert all(len(p.nodes) == args.satellites for p in plans)
        del plans  # keep the heap as it was for the baselines (the GC walks live objects)

        def load_all() -> None:
            for path in paths:
                plan(load(path), registry)

        def safe_load_all() -> None:
            for path in paths:
                yaml.safe_load(path.read_text(encoding="utf-8"))

        def c_safe_load_all() -> None:
            for path in paths:
                yaml.load(path.read_text(encoding="utf-8"), Loader=C_LOADER)

        loader, loader_cpu = best_of(ROUNDS, load_all)
        baseline, baseline_cpu = best_of(ROUNDS, safe_load_all)
        c_baseline, c_baseline_cpu = best_of(ROUNDS, c_safe_load_all)

    total = args.files * args.satellites
    verdict = "within" if loader <= TARGET_SECONDS else "OVER"
    lines = [
        f"load + plan of {args.files} cluster files x {args.satellites} satellites "
        f"({size / 1e6:.2f} MB), best of {ROUNDS}; wall-clock (CPU)",
        f"  exosphere load + plan:          {loader:6.3f} s ({loader_cpu:.3f} s)  "
        f"{loader / args.files * 1e3:.2f} ms per file, {loader / total * 1e6:.0f} us per satellite",
        f"  target:                         {TARGET_SECONDS:6.3f} s  "
        f"-> {loader / TARGET_SECONDS:.2f} x the target ({verdict}; CPU {loader_cpu / TARGET_SECONDS:.2f} x)",
        f"  baseline yaml.safe_load:        {baseline:6.3f} s ({baseline_cpu:.3f} s)  "
        f"-> the loader takes {loader / baseline:.2f} x the baseline (CPU {loader_cpu / baseline_cpu:.2f} x)",
        f"  yaml.load with {C_LOADER.__name__}:  {c_baseline:6.3f} s ({c_baseline_cpu:.3f} s)  "
        f"-> the loader takes {loader / c_baseline:.2f} x (CPU {loader_cpu / c_baseline_cpu:.2f} x)",
        f"  python {platform.python_version()}, PyYAML {yaml.__version__} "
        f"(libyaml {'yes' if yaml.__with_libyaml__ else 'no'}), pydantic {pydantic.VERSION}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report + "\n")
        print(f"written to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()

"""Memory of a 100,000-object S3 listing: the get-files-from-s3 satellite vs the raw boto3 pages.

A moto S3 server runs in its own process (objects are put straight into its backend, which
takes seconds; listing them goes over HTTP like any S3 client). Each variant then runs in a
fresh Python process against it, so one variant's garbage never counts against the other:

* ``satellite``: ``get_files_from_s3`` (pages streamed one at a time, one small object per
  file kept: the items the next satellite receives);
* ``raw-pages``: the common baseline, ``list(paginator.paginate(...))``, every boto3 response
  page held until the end;
* ``stream``: (optional) the satellite's own page loop with nothing kept, the floor.

Reported per variant: the growth of the process's peak RSS (VmHWM) over its RSS just before the
listing, and what it still holds once the listing returned (VmRSS after minus before: the
result). With ``--tracemalloc`` the peak of Python allocations is reported as well; the RSS
figures of that run then include tracemalloc's own bookkeeping (about as much again). moto answers a 1,000-key page in about a second for a 100,000-key
bucket, so each variant takes 1.5-2 minutes at the default size.

    .venv/bin/python bench/listing_memory.py [--objects 100000] [--variants satellite,raw-pages]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUCKET = "bench-listing"
PREFIX = "sec/"
VARIANTS = ("satellite", "raw-pages", "stream")
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def serve(objects: int) -> None:
    """Run a moto server holding ``objects`` keys under PREFIX; print its URL; stop on EOF."""
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    body = b"%PDF-1.4 stub"
    for i in range(objects):
        key = f"{PREFIX}{2020 + i % 6}/q{1 + i % 4}/report-{i:07d}.pdf"
        backend.put_object(BUCKET, key, body)
    print(f"READY {url}", flush=True)
    sys.stdin.read()
    server.stop()


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(variant: str, endpoint: str, trace: bool) -> dict:
    """List the bucket one way; return memory figures (bytes) and the object count."""
    import boto3

    from satellite_ops.satellites.s3_get_files import (
        GetFilesFromS3Config,
        _objects,
        get_files_from_s3,
    )

    config = {"bucket": BUCKET, "prefix": PREFIX, "endpoint-url": endpoint}
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.list_objects_v2(Bucket=BUCKET, MaxKeys=1)  # warm up: connection, parsers, models
    get_files_from_s3(config | {"max-objects": 1}, {})
    gc.collect()
    rss_before = _status_kib("VmRSS") * 1024
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    if variant == "satellite":
        result = get_files_from_s3(config, {})
        count = len(result)
    elif variant == "raw-pages":
        paginator = client.get_paginator("list_objects_v2")
        result = list(paginator.paginate(Bucket=BUCKET, Prefix=PREFIX))
        count = sum(len(page.get("Contents", ())) for page in result)
    elif variant == "stream":
        from satellite_ops.helpers.s3_client import client_for

        cfg = GetFilesFromS3Config.model_validate(config)
        result = None
        count = sum(1 for _ in _objects(client_for(cfg.endpoint_url, None, None), cfg))
    else:
        raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    elapsed = time.perf_counter() - started
    held, peak = tracemalloc.get_traced_memory() if trace else (0, 0)
    tracemalloc.stop()
    gc.collect()
    return {
        "variant": variant,
        "objects": count,
        "seconds": round(elapsed, 1),
        "python_peak": peak,
        "python_held": held,
        "rss_before": rss_before,
        "rss_peak_growth": _status_kib("VmHWM") * 1024 - rss_before,
        "rss_held": _status_kib("VmRSS") * 1024 - rss_before,
        "result_alive": result is not None,
    }


def mib(value: int) -> str:
    return f"{value / 2**20:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--variants", default="satellite,raw-pages", help=", ".join(VARIANTS))
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also report the peak of Python allocations"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(FAKE_AWS)
    os.environ.pop("AWS_PROFILE", None)
    if args.serve:
        serve(args.objects)
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.endpoint, args.tracemalloc)), flush=True)
        return

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    env = {**os.environ, **FAKE_AWS}
    me = [sys.executable, str(Path(__file__).resolve())]
    started = time.perf_counter()
    server = subprocess.Popen(
        [*me, "--serve", "--objects", str(args.objects)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = server.stdout.readline().strip()
        if not line.startswith("READY "):
            raise SystemExit(f"moto server did not start: {line!r}")
        endpoint = line.split()[1]
        print(
            f"moto server with {args.objects:,} objects ready in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        rows = []
        for variant in variants:
            out = subprocess.run(
                [*me, "--measure", variant, "--endpoint", endpoint]
                + (["--tracemalloc"] if args.tracemalloc else []),
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise SystemExit(f"variant {variant} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{variant}: done in {rows[-1]['seconds']} s", file=sys.stderr)
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    traced = " (with tracemalloc running)" if args.tracemalloc else ""
    print(
        f"S3 listing of {args.objects:,} objects from a moto server on loopback; "
        f"each variant in a fresh process{traced}"
    )
    print()
    header = "| variant | objects | time | peak RSS growth | RSS held after |"
    rule = "|---|---:|---:|---:|---:|"
    if args.tracemalloc:
        header += " Python peak | Python held after |"
        rule += "---:|---:|"
    print(header)
    print(rule)
    for r in rows:
        line = (
            f"| {r['variant']} | {r['objects']:,} | {r['seconds']} s "
            f"| {mib(r['rss_peak_growth'])} | {mib(r['rss_held'])} |"
        )
        if args.tracemalloc:
            line += f" {mib(r['python_peak'])} | {mib(r['python_held'])} |"
        print(line)
    by_name = {r["variant"]: r for r in rows}
    if "satellite" in by_name and "raw-pages" in by_name:
        ours, base = by_name["satellite"], by_name["raw-pages"]
        print()
        print(
            f"satellite / raw pages: peak RSS growth "
            f"{ours['rss_peak_growth'] / max(base['rss_peak_growth'], 1):.2f}x "
            f"({ours['rss_peak_growth'] / max(ours['objects'], 1):,.0f} B vs "
            f"{base['rss_peak_growth'] / max(base['objects'], 1):,.0f} B per object)"
        )
    print()
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; total {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()

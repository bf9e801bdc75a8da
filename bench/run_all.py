"""Run every benchmark under bench/ and write its report to bench/results/<name>.md.

A benchmark is any ``bench/*.py`` script with a ``__main__`` block (helpers such as
``bench_satellites.py`` have none). Each runs in its own process from the repository root with
the same interpreter; its standard output is the result, kept verbatim in the report with the
command, the date, the duration and the machine. A failing or timed-out benchmark gets a report
saying so (with the end of its error output) and the others still run. ``bench/results/README.md``
indexes the reports. Exit status 1 when any benchmark failed.

    .venv/bin/python bench/run_all.py                    # all of them, full size
    .venv/bin/python bench/run_all.py --quick            # smaller sizes, a few minutes in all
    .venv/bin/python bench/run_all.py --only fanout,listing_memory
    .venv/bin/python bench/run_all.py --prepare         # also one-off set-up (builds llama-server)
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SELF_REPORTING = {"sla_cost"}  # write their own results file (with the ratio line last)
SELF = Path(__file__).name

# Smaller sizes for --quick: the same measurement, fewer items.
QUICK_ARGS = {
    "fanout": ["--items", "2000", "--baseline-items", "40"],
    "listing_memory": ["--objects", "20000"],
    "load_clusters": ["--files", "50", "--no-write"],
    "llm_batching": ["--prompts", "4"],
    "job_execute": ["--rounds", "1", "--items", "2000"],
    "step_cost": ["--rounds", "2", "--clusters", "50"],
    "large_run": ["--items", "20000"],
    "ui_launch": ["--rounds", "1"],
}
# One-off set-up a benchmark needs, run first with --prepare (e.g. compiling llama-server).
PREPARE = {
    "llm_batching": ["tests/model_satellites/tiny_llama.py", "build"],
}
RUN_LINE = re.compile(r"^Run: (?P<when>.+?) · (?P<status>\w+(?: \w+)?) · (?P<seconds>[\d.]+) s")


@dataclass
class Outcome:
    name: str
    command: list[str]
    status: str  # "ok", "failed", "timed out"
    seconds: float
    stdout: str
    stderr: str
    returncode: int | None


def discover() -> list[Path]:
    """Benchmark scripts: bench/*.py with a ``__main__`` block, this runner excepted."""
    return sorted(
        path
        for path in HERE.glob("*.py")
        if path.name != SELF and '__name__ == "__main__"' in path.read_text(encoding="utf-8")
    )


def describe(path: Path) -> tuple[str, str]:
    """The script's docstring: (first line, the rest)."""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or path.stem
    first, _, rest = doc.partition("\n")
    return first.strip(), rest.strip()


def run_one(path: Path, extra: list[str], timeout: float) -> Outcome:
    command = [sys.executable, str(path.relative_to(REPO)), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        return Outcome(
            path.stem,
            command,
            "timed out",
            time.perf_counter() - started,
            _text(exc.stdout),
            _text(exc.stderr),
            None,
        )
    status = "ok" if done.returncode == 0 else "failed"
    return Outcome(
        path.stem,
        command,
        status,
        time.perf_counter() - started,
        done.stdout,
        done.stderr,
        done.returncode,
    )


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"python {platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f} after the run"
    )


def report(path: Path, outcome: Outcome) -> str:
    title, details = describe(path)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    shown = " ".join(["python", *outcome.command[1:]])
    lines = [
        f"# {outcome.name}: {title}",
        "",
        f"Run: {when} · {outcome.status} · {outcome.seconds:.1f} s · {machine()}",
        "",
        f"Command: `{shown}` (from the repository root; all of them: `python bench/run_all.py`)",
        "",
        "## Result",
        "",
    ]
    if outcome.stdout.strip():
        lines += ["```text", outcome.stdout.rstrip(), "```", ""]
    else:
        lines += ["(no output)", ""]
    if outcome.status != "ok":
        tail = "\n".join(outcome.stderr.rstrip().splitlines()[-40:])
        code = "" if outcome.returncode is None else f" (exit status {outcome.returncode})"
        lines += [
            f"## Why it did not finish{code}",
            "",
            "```text",
            tail or "(no output)",
            "```",
            "",
        ]
    if details:
        lines += ["## What it measures", "", details, ""]
    return "\n".join(lines)


def write_index(scripts: list[Path]) -> None:
    rows = []
    for path in scripts:
        title, _ = describe(path)
        md = RESULTS / f"{path.stem}.md"
        when = status = seconds = "-"
        if md.exists():
            for line in md.read_text(encoding="utf-8").splitlines():
                if match := RUN_LINE.match(line):
                    when, status, seconds = match["when"], match["status"], match["seconds"] + " s"
                    break
        link = f"[{path.stem}]({path.stem}.md)" if md.exists() else path.stem
        rows.append(f"| {link} | {title} | {status} | {seconds} | {when} |")
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            "Written by `python bench/run_all.py` (one report per `bench/*.py` script).",
            "",
            "| benchmark | what | status | time | run |",
            "|---|---|---|---:|---|",
            *rows,
            "",
        ]
    )
    (RESULTS / "README.md").write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark names (file stems)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (see QUICK_ARGS)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    parser.add_argument(
        "--prepare", action="store_true", help="run one-off set-up steps first (see PREPARE)"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    args = parser.parse_args()

    scripts = discover()
    if args.list:
        for path in scripts:
            print(f"{path.stem:20} {describe(path)[0]}")
        return 0
    chosen = scripts
    if args.only:
        wanted = {name.strip().removesuffix(".py") for name in args.only.split(",") if name}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        chosen = [p for p in scripts if p.stem in wanted]

    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for path in chosen:
        setup = PREPARE.get(path.stem)
        if args.prepare and setup and (REPO / setup[0]).is_file():
            print(f"== prepare {path.stem}: {' '.join(setup)}", flush=True)
            subprocess.run([sys.executable, *setup], cwd=REPO, check=False)
        extra = QUICK_ARGS.get(path.stem, []) if args.quick else []
        print(f"== {path.stem} {' '.join(extra)}".rstrip(), flush=True)
        outcome = run_one(path, extra, args.timeout)
        if path.stem not in SELF_REPORTING or outcome.status != "ok":
            (RESULTS / f"{path.stem}.md").write_text(report(path, outcome), encoding="utf-8")
        print(outcome.stdout.rstrip() or "(no output)", flush=True)
        print(f"-> {outcome.status} in {outcome.seconds:.1f} s: bench/results/{path.stem}.md\n")
        if outcome.status != "ok":
            failed.append(path.stem)
    write_index(scripts)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SLA cost: the same 64-prompt extraction run as a 6h and as a 24h cluster on one llama-server, priced per 1,000 items.

Both clusters run one LLM satellite (``engine: openai``, the reference output-schema) through
Dagster (multiprocess executor, as ``dagster dev`` runs them) against the SAME llama-server
process (tests/satellites_ii/tiny_llama.py: llama.cpp, CPU, a random 1024-d 8-layer Llama, 64
slots). Each tier uses its own settings: the 6h tier gets small chunks (one chunk is one batch
call; runtime/chunking.py) with 8 requests in flight per step, on the on-demand GPU pool; the
24h tier one chunk of all prompts with 64 in flight, on the spot GPU pool. Measured per tier:
tokens, the server's CPU seconds (/proc/<pid>/stat, before and after), the LLM steps' compute
seconds and cost from their metadata (cost.py: wall seconds x requested CPU/GPU x pool price)
and the run's cost per 1,000 items from the summary. Then the 24h / 6h ratios: compute alone
(both tiers priced at the 6h pool's prices) and priced (each at its own pool's prices).

The provider path: the 24h cluster with ``batch: always`` through a real Batch API server
(llama-stack's reference provider, tests/satellites_ii/batch_server.py) in front of the same
llama-server, priced at OpenAI's gpt-4o-mini list prices (batch = 50%), beside the 6h tier's
measured tokens at the synchronous prices.

Writes bench/results/sla_cost.md (the same text as printed).

    python tests/satellites_ii/tiny_llama.py build   # once per machine
    .venv/bin/python bench/sla_cost.py [--prompts 64] [--no-batch-api]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "satellites_ii"))

from batch_server import batch_server, find_llama_stack  # noqa: E402
from tiny_llama import SERVER_PIDS, llama_server, server_metrics, write_tiny_model  # noqa: E402

from exosphere_dagster.cost import PRICES_FILE_ENV, load_prices  # noqa: E402
from llm_batching import PROMPT, SCHEMA, _items  # noqa: E402

# The example table (src/exosphere_dagster/prices.example.yaml) plus the two bench models: the
# self-hosted tiny model, and the same model behind the Batch API priced as gpt-4o-mini.
PROVIDER = "OpenAI gpt-4o-mini list prices: $0.15 / $0.60 per million input / output tokens; Batch API $0.075 / $0.30 (50%)"  # noqa: E501
BENCH_MODELS = """\
# bench/sla_cost.py: the tiny model is served by our own llama-server (compute only); behind
# the Batch API server it stands in for a provider model at gpt-4o-mini's list prices.
self-hosted: [tiny]
models:
  llama-cpp/tiny: {input: 0.15, output: 0.60, batch-input: 0.075, batch-output: 0.30}
"""
TIERS = {  # each tier's own settings besides what the product picks (chunks, pool)
    "6h": {"max-concurrency": 8},
    "24h": {"max-concurrency": 64},
}


def price_table(folder: Path) -> Path:
    """The example table with its models section replaced by the bench's."""
    from exosphere_dagster.cost import EXAMPLE_PRICES

    text = EXAMPLE_PRICES.read_text()
    start, end = text.index("# USD per million tokens"), text.index("# What `exosphere plan`")
    path = folder / "prices.yaml"
    path.write_text(text[:start] + BENCH_MODELS + text[end:])
    return path


def cluster(sla: str, url: str, model: str, extra: dict) -> str:
    config = {
        "model": model,
        "engine": "openai",
        "base-url": url,
        "temperature": 0.5,
        "max-tokens": 512,
        "output-format": "json",
        "output-schema": SCHEMA,
        **extra,
    }
    spec = {
        "identifier": f"bench/sla-cost-{sla}-{extra.get('batch', 'auto')}",
        "sla": sla,
        "trigger": "api-call",
        "retries": 2,
        "delay": 0,
        "satellites": [
            {"uses": "satellite/exospherehost/llm", "identifier": "extract", "config": config}
        ],
    }
    if "resources" in extra:
        spec["satellites"][0]["resources"] = config.pop("resources")
    return yaml.safe_dump({"version": "0.0.1b", "cluster": spec}, sort_keys=False)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class TierRun:
    name: str
    wall: float = 0.0
    server_cpu: float = 0.0
    decodes: float = 0.0
    steps: int = 0
    chunk: int = 0
    pool: str = ""
    failed: int = 0
    first_answers: float = 0.0  # seconds from the run's start to its first LLM step's end
    llm: dict[str, float] = field(default_factory=dict)  # summed over the LLM steps
    summary: dict[str, float] = field(default_factory=dict)

    def get(self, key: str) -> float:
        return float(self.llm.get(key, 0.0))


def run_tier(instance, folder: Path, name: str, text: str, prompts: int, server: str) -> TierRun:
    from dagster import DagsterEventType

    from exosphere_dagster.launch import run_cluster_file

    path = folder / f"{name}.yml"
    path.write_text(text)
    inputs = [
        {"prompt": PROMPT.format(i=i, q=i % 4 + 1, r=100 + i, g=40 + i, o=20 + i, n=10 + i)}
        for i in range(prompts)
    ]
    pid = SERVER_PIDS[server]
    run = TierRun(name)
    before, decodes = cpu_seconds(pid), server_metrics(server)["n_decode_total"]
    started = time.perf_counter()
    result = run_cluster_file(path, inputs, instance=instance, multiprocess=True, log_level="ERROR")
    run.wall = time.perf_counter() - started
    run.server_cpu = cpu_seconds(pid) - before
    run.decodes = server_metrics(server)["n_decode_total"] - decodes
    for record in instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_OUTPUT):
        event = record.dagster_event
        meta = {k: v.value for k, v in event.event_specific_data.metadata.items()}
        output = event.step_output_data.output_name
        if event.step_key.startswith("extract[") and output == "report":
            run.steps += 1
            run.chunk = max(run.chunk, int(meta["items_in"]))
            run.failed += int(meta["failed"])
            run.pool = str(meta["pool"])
            for key, value in meta.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    run.llm[key] = run.llm.get(key, 0.0) + float(value)
        elif output == "result":
            run.summary = {k: v for k, v in meta.items() if isinstance(v, int | float)}
    kinds = {DagsterEventType.RUN_START, DagsterEventType.STEP_SUCCESS}
    records = instance.all_logs(result.run_id, of_type=kinds)
    begun = min(
        r.timestamp for r in records if r.dagster_event.event_type == DagsterEventType.RUN_START
    )
    ends = [r.timestamp for r in records if (r.step_key or "").startswith("extract[")]
    run.first_answers = min(ends) - begun if ends else 0.0
    if not result.success or run.failed:
        print(f"warning: {name}: run success={result.success}, {run.failed} failed items",
              file=sys.stderr)  # fmt: skip
    return run


def warm_up(url: str) -> None:
    from satellite_ops.llm import DeepSeekR1DistillLlama70BConfig, answer_batch

    asyncio.run(answer_batch(_items(url, 2, 2, {}), DeepSeekR1DistillLlama70BConfig))


def at_prices(run: TierRun, pool, items: int) -> float:
    """The tier's measured LLM-step CPU and GPU seconds at one pool's prices, per 1,000 items."""
    usd = (run.get("cpu_seconds") * pool.cpu_hour + run.get("gpu_seconds") * pool.gpu_hour) / 3600
    return usd / items * 1000


def report(args, prices_text: str, runs: dict[str, TierRun], batch: TierRun | None) -> str:
    prices = load_prices()
    six, day = runs["6h"], runs["24h"]
    n = args.prompts
    same = {k: at_prices(r, prices.pools[six.pool], n) for k, r in runs.items()}
    priced = {k: r.summary["cost_usd_per_1000_items"] for k, r in runs.items()}
    ratio_same, ratio_priced = same["24h"] / same["6h"], priced["24h"] / priced["6h"]
    load = os.getloadavg()[0]
    lines = [
        "# sla_cost: a 24h cluster against a 6h cluster, the same prompts, one llama-server",
        "",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.machine()}, {os.cpu_count()} "
        f"CPUs, load average {load:.1f} after the runs · `python bench/sla_cost.py"
        f"{' --prompts ' + str(n) if n != 64 else ''}`",
        "",
        f"Workload: {n} extraction prompts (bench/llm_batching.py's report prompt, the reference "
        "output-schema, max-tokens 512, temperature 0.5), one `satellite/exospherehost/llm` "
        "(engine openai, 1 GPU + 4 CPU requested, the satellite's default) per cluster, run by "
        "Dagster's multiprocess executor (2 workers) on a SQLite instance, against ONE "
        f"llama-server (random Llama {args.embd}-d, {args.layers} layers, f32, CPU, --threads 1, "
        "--parallel 64, continuous batching) for both tiers.",
        "",
        "## Price table",
        "",
        "```yaml",
        prices_text.rstrip(),
        "```",
        "",
        "Compute is priced as Kubernetes allocates it: a step's wall seconds x the CPU and GPU "
        "it requested x its pool's hourly price (docs/cost.md). The 'GPU' here is the CPU "
        "llama-server: a stand-in for the GPU a self-hosted engine would run on.",
        "",
        "## Per tier",
        "",
        "| | 6h | 24h | 24h / 6h |",
        "|---|---:|---:|---:|",
    ]

    def row(label: str, a: float, b: float, fmt: str = "{:.1f}") -> None:
        ratio = f"{b / a:.2f}" if a else "-"
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")

    lines.append(f"| LLM step pool | {six.pool} | {day.pool} | |")
    row("chunk (= batch) size, items", six.chunk, day.chunk, "{:.0f}")
    row("LLM steps", six.steps, day.steps, "{:.0f}")
    row("requests in flight per step (max-concurrency)",
        TIERS["6h"]["max-concurrency"], TIERS["24h"]["max-concurrency"], "{:.0f}")  # fmt: skip
    row("prompt tokens", six.get("llm/prompt_tokens"), day.get("llm/prompt_tokens"), "{:.0f}")
    row("completion tokens", six.get("llm/completion_tokens"),
        day.get("llm/completion_tokens"), "{:.0f}")  # fmt: skip
    row("failed items", six.failed, day.failed, "{:.0f}")
    row("run wall seconds", six.wall, day.wall)
    row("first answers after, seconds (run start to first LLM step done)", six.first_answers,
        day.first_answers)  # fmt: skip
    row("llama-server CPU seconds (/proc)", six.server_cpu, day.server_cpu)
    row("llama-server decode steps", six.decodes, day.decodes, "{:.0f}")
    row("LLM steps' compute seconds (sum of wall)", six.get("compute_seconds"),
        day.get("compute_seconds"))  # fmt: skip
    row("GPU-seconds held (compute s x 1 GPU)", six.get("gpu_seconds"), day.get("gpu_seconds"))
    row(f"USD per 1,000 items at the 6h pool's prices ({six.pool})", same["6h"], same["24h"],
        "{:.4f}")  # fmt: skip
    row("USD per 1,000 items, each tier's pool (summary's cost_usd_per_1000_items)",
        priced["6h"], priced["24h"], "{:.4f}")  # fmt: skip
    lines += [
        "",
        "The 6h steps run two at a time (2 workers) against the one server, so it decodes up to "
        "16 sequences at once for the 6h tier and 64 for the 24h tier. GPU-seconds held count "
        "each LLM step's pod holding its GPU for its wall seconds, as Kubernetes bills it: two "
        "6h steps hold two GPUs at once. The server's CPU seconds are the engine's work "
        "itself, whatever the steps held.",
        "",
        "## Provider Batch API",
        "",
        f"Prices: {PROVIDER}.",
        "",
    ]
    mini = prices.models["llama-cpp/tiny"]
    sync = (six.get("llm/prompt_tokens") * mini.input
            + six.get("llm/completion_tokens") * mini.output) / 1e6 / n * 1000  # fmt: skip
    lines.append(
        f"- 6h, synchronous calls: the 6h run's measured tokens at the sync prices: "
        f"${sync:.4f} per 1,000 items"
    )
    if batch is not None:
        tokens = batch.get("cost/tokens_usd") / n * 1000
        total = batch.summary["cost_usd_per_1000_items"]
        lines.append(
            f"- 24h, `batch: always` through llama-stack's Batch API (measured run: "
            f"{batch.get('llm/batches'):.0f} batch(es), {batch.get('llm/batch_prompt_tokens'):.0f}"
            f" + {batch.get('llm/batch_completion_tokens'):.0f} tokens answered by batch, "
            f"{batch.get('llm/sync_fallbacks'):.0f} sync fallbacks, {batch.wall:.0f} s): tokens "
            f"${tokens:.4f} per 1,000 items; with the step's own pod ({batch.pool}, 250m CPU, "
            f"no GPU) ${total:.4f}"
        )
        lines.append(f"- 24h batch / 6h sync, tokens: {tokens / sync:.2f}; with compute: "
                     f"{total / sync:.2f}")  # fmt: skip
    else:
        why = "--no-batch-api" if args.no_batch_api else "llama-stack is not installed"
        tokens = (day.get("llm/prompt_tokens") * mini.batch_input
                  + day.get("llm/completion_tokens") * mini.batch_output) / 1e6 / n * 1000  # fmt: skip
        lines.append(
            f"- 24h by batch: NOT measured ({why}); the 24h run's "
            f"tokens at the batch prices: ${tokens:.4f} per 1,000 items "
            f"({tokens / sync:.2f} of sync)"
        )
    goal = "met" if ratio_priced <= 0.5 and ratio_same < 1 else "NOT met"
    lines += [
        "",
        "## Ratios (24h / 6h)",
        "",
        f"Goal: priced <= 0.5 with a measured compute gain (< 1 at the same prices): {goal}.",
        "",
        f"24h / 6h llama-server CPU seconds: {day.server_cpu / six.server_cpu:.2f}",
        f"24h / 6h measured compute seconds (LLM steps, same prices): {ratio_same:.2f}",
        f"24h / 6h priced cost per 1,000 items: {ratio_priced:.2f}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--embd", type=int, default=1024, help="model width")
    parser.add_argument("--layers", type=int, default=8, help="model depth")
    parser.add_argument("--no-batch-api", action="store_true", help="skip the llama-stack run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sla_cost.md")
    args = parser.parse_args()
    from dagster import DagsterInstance

    with tempfile.TemporaryDirectory(prefix="exosphere-sla-cost-") as tmp:
        folder = Path(tmp)
        prices_path = price_table(folder)
        os.environ[PRICES_FILE_ENV] = str(prices_path)
        model = write_tiny_model(
            folder / "random.gguf", n_embd=args.embd, n_layer=args.layers, n_head=8,
            n_ff=args.embd * 11 // 4,
        )  # fmt: skip
        home = folder / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        instance = DagsterInstance.local_temp(str(home))
        runs: dict[str, TierRun] = {}
        batch = None
        log = folder / "llama-server.log"
        with llama_server(model, parallel=64, ctx_per_slot=1024, threads=1, log=log) as url:
            warm_up(url)
            for sla in ("6h", "24h"):
                text = cluster(sla, url, "tiny", {**TIERS[sla], "batch": "never"})
                runs[sla] = run_tier(instance, folder, sla, text, args.prompts, url)
                print(f"{sla}: {runs[sla].wall:.0f} s", file=sys.stderr, flush=True)
            if not args.no_batch_api and find_llama_stack() is not None:
                with batch_server(url, folder / "llama-stack", requests_per_batch=64) as api:
                    extra = {
                        "batch": "always", "max-concurrency": 64,
                        "batch-poll-seconds": 1, "batch-poll-max-seconds": 2,
                        "resources": {"gpu": 0, "cpu": "250m", "memory": "512Mi"},
                    }  # fmt: skip
                    text = cluster("24h", api, "llama-cpp/tiny", extra)
                    batch = run_tier(instance, folder, "24h-batch", text, args.prompts, url)
        text = report(args, prices_path.read_text(), runs, batch)
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()

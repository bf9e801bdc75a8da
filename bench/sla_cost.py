"""A longer SLA buys a cheaper run: the same 64-prompt extraction as a 6h and as a 24h cluster, measured and priced.

Both clusters are one LLM satellite (the reference example's extraction prompt and output
schema, ``engine: openai``) against the same self-hosted ``llama-server`` process (CPU, a random
Llama written by tests/model_satellites/tiny_llama.py, one slot per prompt), run through Dagster's
multiprocess executor with the same number of steps at once (``--workers``). Only the tier
differs, and with it what the tier decides (yaml_loader/tiers.py): the 6h tier sends small
batches early (8 steps of 8 prompts), the 24h tier one batch of 64 (one step); the 6h tier's
pods go to the on-demand pool, the 24h tier's to spot.

Measured per tier: tokens; the server's CPU seconds (``/proc/<pid>/stat`` before and after the
run: the capacity a server sized to the work needs); the steps' reserved CPU seconds (wall x
request, from the steps' and the summary's metadata, as Kubernetes bills a pod). Then two
ratios 24h / 6h: the compute seconds alone (the same price for both), and the priced cost (the
tier's pool prices from the price table, printed). The provider path: the 24h cluster again with
``batch: always`` through a real Batch API (llama-stack in front of another llama-server, when
built), its tokens priced at gpt-4o-mini's published prices beside the 6h run's tokens at the
synchronous price. Writes ``bench/results/sla_cost.md``.

    python tests/model_satellites/tiny_llama.py build   # once per machine (llama-server, llama-stack)
    .venv/bin/python bench/sla_cost.py [--prompts 64] [--workers 4] [--no-batch-api]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "model_satellites"))

from batch_server import batch_server, find_llama_stack  # noqa: E402
from tiny_llama import llama_server, server_metrics, write_tiny_model  # noqa: E402

PROVIDER = "OpenAI gpt-4o-mini list prices: $0.15 / $0.60 per million input / output tokens, Batch API half (2026)"  # noqa: E501
PRICES = """\
source: bench prices (pools as the example table; the LLM server self-hosted; gpt-4o-mini list)
pools:
  on-demand: {cpu-hour: 0.048, gpu-hour: 1.006}   # AWS m5.xlarge $0.192/h on demand / 4 vCPU
  spot: {cpu-hour: 0.0125, gpu-hour: 0.40}         # the same, about $0.05/h on spot
models:
  - {engine: openai, model: tiny, self-hosted: true}
  - {engine: openai, model: gpt-4o-mini, sync: {input: 0.15, output: 0.60},
     batch: {input: 0.075, output: 0.30}}
  - {engine: openai, model: llama-cpp/tiny, sync: {input: 0.15, output: 0.60},
     batch: {input: 0.075, output: 0.30}}   # the Batch API path, priced as gpt-4o-mini
"""
SCHEMA = (
    '{"company": string, "quarter": string, "year": string, "revenue": number, '
    '"net-income": number, "gross-profit": number, "operating-income": number, '
    '"net-income-margin": number, "gross-profit-margin": number, "operating-income-margin": number}'
)
PROMPT = (
    "Parse the following quarterly financial report and return a structured json output as "
    "defined in the output-schema, report text is provided below:\n"
    "Company {i} quarterly report, Q{q} 2026. Revenue was {r} million, gross profit {g} million, "
    "operating income {o} million and net income {n} million."
)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cluster_file(folder: Path, sla: str, url: str, model: str, batch: str, name: str) -> Path:
    config = {
        "model": model, "engine": "openai", "base-url": url, "temperature": 0.5,
        "max-tokens": 512, "output-format": "json", "output-schema": SCHEMA,
        "max-concurrency": 64, "batch": batch,
    }  # fmt: skip
    satellite = {
        "uses": "satellite/exospherehost/llm",
        "identifier": "extract",
        "config": config,
        "resources": {"gpu": 0},  # a client of the server: the step's pod needs no GPU
    }
    body = {"identifier": f"bench/sla-{name}", "sla": sla, "trigger": "api-call", "retries": 2,
            "delay": 0, "satellites": [satellite]}  # fmt: skip
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump({"version": "0.0.1b", "cluster": body}, sort_keys=False))
    return path


def step_metadata(instance, run_id: str) -> tuple[list[dict], dict]:
    """(the LLM steps' report metadata, the summary's metadata) of one run."""
    from exosphere_dagster.translate.ui import read_metadata

    steps, summary = [], {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.event_type_value != "STEP_OUTPUT":
            continue
        values = read_metadata(event.event_specific_data.metadata)
        if event.step_key.startswith("extract["):
            if event.event_specific_data.step_output_handle.output_name == "report":
                steps.append(values)
        elif event.step_key == "exosphere__summary":
            summary = values
    return steps, summary


def first_answers(instance, run_id: str) -> float:
    """Seconds from the run's start to the end of its first LLM step: when answers begin."""
    stats = instance.get_run_step_stats(run_id)
    start = min(s.start_time for s in stats if s.start_time)
    return min(s.end_time for s in stats if s.step_key.startswith("extract[")) - start


def run_tier(instance, path: Path, prompts: list[dict], pid: int, url: str | None) -> dict:
    """One run of the cluster at ``path``; ``pid`` (and ``url``) of the server that answers."""
    from exosphere_dagster.entry.launch import run_cluster_file

    before, decodes = cpu_seconds(pid), server_metrics(url)["n_decode_total"] if url else 0.0
    started = time.perf_counter()
    result = run_cluster_file(path, prompts, instance=instance, multiprocess=True)
    wall = time.perf_counter() - started
    server = cpu_seconds(pid) - before
    decodes = server_metrics(url)["n_decode_total"] - decodes if url else 0.0
    steps, summary = step_metadata(instance, result.run_id)
    tags = instance.get_run_by_id(result.run_id).tags
    return {
        "ok": result.success,
        "wall": wall,
        "first": first_answers(instance, result.run_id),
        "decodes": decodes,
        "server_cpu": server,
        "steps": len(steps),
        "batch": max(int(s["items_in"]) for s in steps) if steps else 0,
        "pool": steps[0]["compute/pool"] if steps else "?",
        "llm_cpu": sum(s["compute/cpu_seconds"] for s in steps),
        "llm_wall": sum(s["compute/seconds"] for s in steps),
        "run_cpu": summary.get("compute/cpu_seconds", 0.0),
        "run_usd": summary.get("cost_usd", 0.0),
        "tokens_usd": summary.get("cost/tokens_usd", 0.0),
        "prompt": summary.get("llm/prompt_tokens", 0.0),
        "completion": summary.get("llm/completion_tokens", 0.0),
        "batch_prompt": summary.get("llm/batch_prompt_tokens", 0.0),
        "batch_completion": summary.get("llm/batch_completion_tokens", 0.0),
        "succeeded": tags.get("exosphere/succeeded"),
        "failed": tags.get("exosphere/failed"),
        "cost_tag": tags.get("exosphere/cost_usd"),
    }


def priced(table, tier: dict) -> float:
    """The run's cost (steps, from its summary) plus its server's CPU seconds at the pool's
    CPU price: the server runs in the tier's pool, like the tier's pods."""
    from exosphere_dagster.resolve.cost.prices import compute_cost
    from exosphere_dagster.resolve.execution_plan import ResourceRequest
    from exosphere_dagster.resolve.placement import Placement, Pool

    one_cpu = ResourceRequest.of(Placement({"cpu": "1"}, (Pool(name=tier["pool"]),)))
    server, _ = compute_cost(table, one_cpu, tier["server_cpu"])
    return tier["run_usd"] + server


def provider_cost(table, tier: dict, batch: bool) -> float:
    """The run's tokens at gpt-4o-mini's prices: sync, or (``batch``) as its Batch API rows."""
    from exosphere_dagster.resolve.cost.prices import token_cost

    used = {"llm/prompt_tokens": tier["prompt"], "llm/completion_tokens": tier["completion"]}
    if batch:
        used |= {"llm/batch_prompt_tokens": tier["batch_prompt"],
                 "llm/batch_completion_tokens": tier["batch_completion"]}  # fmt: skip
    return token_cost(table, ("openai", "gpt-4o-mini"), used)[0]


def main() -> None:  # noqa: PLR0915 - one measurement, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4, help="steps at once (both tiers)")
    parser.add_argument("--embd", type=int, default=1024, help="model width")
    parser.add_argument("--layers", type=int, default=8, help="model depth")
    parser.add_argument("--no-batch-api", action="store_true", help="skip the llama-stack run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sla_cost.md")
    args = parser.parse_args()
    prompts = [
        {"prompt": PROMPT.format(i=i, q=i % 4 + 1, r=100 + i, g=40 + i, o=20 + i, n=10 + i)}
        for i in range(args.prompts)
    ]
    per_k = 1000 / args.prompts
    with tempfile.TemporaryDirectory(prefix="sla-cost-") as tmp:
        folder = Path(tmp)
        home = folder / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        (folder / "prices.yaml").write_text(PRICES)
        os.environ.update({
            "DAGSTER_HOME": str(home), "EXOSPHERE_PRICES_FILE": str(folder / "prices.yaml"),
            "DAGSTER_MULTIPROCESS_EXECUTOR_MAX_CONCURRENT": str(args.workers),
            "EXOSPHERE_BATCH_POLL_SECONDS": "0.5", "EXOSPHERE_BATCH_POLL_MAX_SECONDS": "2",
        })  # fmt: skip
        from dagster import DagsterInstance

        from exosphere_dagster.resolve.deployment import Deployment

        table = Deployment.load().prices
        model = write_tiny_model(
            folder / "random.gguf", n_embd=args.embd, n_layer=args.layers, n_head=8,
            n_ff=args.embd * 11 // 4,
        )  # fmt: skip
        servers: list = []
        tiers: dict[str, dict] = {}
        with DagsterInstance.get() as instance:
            with llama_server(
                model, parallel=args.prompts, ctx_per_slot=1024, log=folder / "llama.log",
                started=servers.append,
            ) as url:  # fmt: skip
                pid = servers[0].pid
                warm = cluster_file(folder, "24h", url, "tiny", "never", "warm-up")
                run_tier(instance, warm, prompts[:2], pid, url)
                for sla in ("6h", "24h"):
                    path = cluster_file(folder, sla, url, "tiny", "never", sla)
                    tiers[sla] = run_tier(instance, path, prompts, pid, url)
            provider = None
            if not args.no_batch_api and find_llama_stack() is not None:
                with batch_server(model, folder / "batch-api") as api:
                    path = cluster_file(folder, "24h", api.url, api.model, "always", "24h-batch")
                    provider = run_tier(instance, path, prompts, api.llama.pid, None)
    six, day = tiers["6h"], tiers["24h"]
    lines = [
        f"# sla_cost: {__doc__.splitlines()[0]}",
        "",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs · {args.prompts} prompts, {args.workers} "
        f"steps at once, llama-server CPU --threads 1 --parallel {args.prompts}, random Llama "
        f"({args.embd}-d, {args.layers} layers, f32)",
        "",
        "Command: `.venv/bin/python bench/sla_cost.py` (docstring: what it measures and how)",
        "",
        "## Price table (EXOSPHERE_PRICES_FILE)",
        "",
        "```yaml",
        PRICES.rstrip(),
        "```",
        "",
        "## Measured",
        "",
        "| tier | pool | steps x batch | first answers s | wall s | sequences per decode step | "
        "server CPU s | step CPU s (LLM / run) | prompt + completion tokens | items ok / failed "
        "| cost_usd per 1,000 items |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sla, t in tiers.items():
        per_decode = t["completion"] / t["decodes"] if t["decodes"] else 0.0
        lines.append(
            f"| {sla} | {t['pool']} | {t['steps']} x {t['batch']} | {t['first']:.1f} | "
            f"{t['wall']:.1f} | {per_decode:.1f} | "
            f"{t['server_cpu']:.1f} | {t['llm_cpu']:.1f} / {t['run_cpu']:.1f} | "
            f"{t['prompt']:.0f} + {t['completion']:.0f} | {t['succeeded']} / {t['failed']} | "
            f"{priced(table, t) * per_k:.6f} |"
        )
    compute = {sla: t["server_cpu"] + t["run_cpu"] for sla, t in tiers.items()}
    compute_ratio = compute["24h"] / compute["6h"]
    priced_ratio = priced(table, day) / priced(table, six)
    lines += [
        "",
        "cost_usd = the run's own cost (its summary: steps' reserved CPU x pool price; the "
        "self-hosted model has no token price) + the server's CPU seconds x the same pool's "
        "CPU price. Per 1,000 items: x 1000 / prompts.",
        "",
        f"- 24h / 6h compute seconds alone (server + steps, same price): "
        f"{compute['24h']:.1f} / {compute['6h']:.1f} = {compute_ratio:.2f}",
        f"  (server {day['server_cpu'] / six['server_cpu']:.2f}, steps "
        f"{day['run_cpu'] / six['run_cpu']:.2f})",
        f"- 24h / 6h priced (pool prices applied): {priced_ratio:.2f}",
        "",
        "Where the measured gain comes from: the server decodes "
        f"{day['completion'] / max(day['decodes'], 1):.1f} sequences per decode step for the 24h "
        f"batch against {six['completion'] / max(six['decodes'], 1):.1f} for the 6h batches "
        f"(server CPU x{day['server_cpu'] / six['server_cpu']:.2f}); and one step holds a pod "
        f"for {day['llm_wall']:.0f} s where the 6h run's {six['steps']} steps hold pods for "
        f"{six['llm_wall']:.0f} s in all ({args.workers} at once, each waiting for its batch). "
        f"What the 6h tier buys with it: its first answers after {six['first']:.0f} s, the 24h "
        f"tier's after {day['first']:.0f} s. Not counted: on Kubernetes each of the 6h run's "
        f"{six['steps'] - day['steps']} extra steps also starts a pod.",
    ]
    sync_k = provider_cost(table, six, batch=False) * per_k
    lines += ["", "## Provider path (tokens at a provider's published prices)", "", PROVIDER, ""]
    if provider is not None:
        batch_k = provider["tokens_usd"] * per_k
        lines += [
            f"- 24h, `batch: always`, through llama-stack's Batch API (its own llama-server, 4 "
            f"slots): {provider['steps']} step(s), {provider['prompt']:.0f} + "
            f"{provider['completion']:.0f} tokens, of which {provider['batch_prompt']:.0f} + "
            f"{provider['batch_completion']:.0f} through the batch, items "
            f"{provider['succeeded']} ok / {provider['failed']} failed, {provider['wall']:.1f} s; "
            f"tokens ${batch_k:.6f} per 1,000 items (the run's own cost_usd, batch price)",
            f"- 6h tokens at the synchronous price: ${sync_k:.6f} per 1,000 items",
            f"- batch / sync per 1,000 items: {batch_k / sync_k:.2f} (the provider's price cut)",
        ]
    else:
        day_batch = provider_cost(table, {**day, "batch_prompt": day["prompt"],
                                          "batch_completion": day["completion"]}, batch=True)  # fmt: skip
        lines += [
            "- no Batch API run (llama-stack not built, or --no-batch-api): computed from the measured tokens",
            f"- 6h sync ${sync_k:.6f}, 24h batch ${day_batch * per_k:.6f} per 1,000 items",
        ]
    lines += ["", f"24h / 6h priced cost per 1,000 items: {priced_ratio:.2f}"]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()

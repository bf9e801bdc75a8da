"""LLM batching: the same N prompts one at a time vs as one batch, through the LLM satellite.

Both runs go to the same OpenAI-compatible server: llama.cpp's ``llama-server`` on 127.0.0.1
(CPU, ``--parallel`` slots, continuous batching) serving a tiny random Llama model written by
``tests/model_satellites/tiny_llama.py``; answers are constrained to the reference example's
output-schema. "Sequential" calls the satellite once per prompt (max-concurrency 1); "batched"
calls it once with all N items (a chunk), which sends them concurrently so the server decodes
them together. Prints completion tokens/s of each and the ratio, and appends them to
``bench/results/llm_batching.txt``.

    python tests/model_satellites/tiny_llama.py build   # once per machine
    .venv/bin/python bench/llm_batching.py [--prompts 32] [--parallel 16]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
import tempfile
import time
import types
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "model_satellites"))

from tiny_llama import llama_server, server_metrics, write_tiny_model  # noqa: E402

from satellite_ops import BatchItem  # noqa: E402
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import DeepSeekR1DistillLlama70BConfig  # noqa: E402
from satellite_ops.satellites.llm import answer_batch  # noqa: E402

SCHEMA = """{
    "company": string, "quarter": string, "year": string, "revenue": number,
    "net-income": number, "gross-profit": number, "operating-income": number,
    "net-income-margin": number, "gross-profit-margin": number, "operating-income-margin": number,
}"""
PROMPT = (
    "Parse the following quarterly financial report and return a structured json output as "
    "defined in the output-schema, report text is provided below:\n"
    "Company {i} quarterly report, Q{q} 2026. Revenue was {r} million, gross profit {g} million, "
    "operating income {o} million and net income {n} million."
)
log = logging.getLogger("bench.llm_batching")


def _items(url: str, count: int, concurrency: int, metrics: dict) -> list[BatchItem]:
    config = DeepSeekR1DistillLlama70BConfig.model_validate(
        {
            "model": "tiny",
            "engine": "openai",
            "base-url": url,
            "temperature": 0.5,
            "max-tokens": 512,
            "output-format": "json",
            "output-schema": SCHEMA,
            "max-concurrency": concurrency,
        }
    )
    context = types.SimpleNamespace(log=log, metrics=metrics)
    prompts = [
        PROMPT.format(i=i, q=i % 4 + 1, r=100 + i, g=40 + i, o=20 + i, n=10 + i)
        for i in range(count)
    ]
    return [BatchItem(config, {"prompt": p}, context) for p in prompts]


def _run(url: str, count: int, parallel: int, batched: bool) -> dict[str, float]:
    metrics: dict[str, float] = {}
    items = _items(url, count, parallel if batched else 1, metrics)
    before = server_metrics(url)
    started = time.perf_counter()
    if batched:
        results = asyncio.run(answer_batch(items, DeepSeekR1DistillLlama70BConfig))
    else:
        results = [
            asyncio.run(answer_batch([i], DeepSeekR1DistillLlama70BConfig))[0] for i in items
        ]
    seconds = time.perf_counter() - started
    after = server_metrics(url)
    failed = sum(isinstance(r, BaseException) for r in results)
    tokens = metrics["llm/completion_tokens"]
    return {
        "seconds": seconds,
        "completion_tokens": tokens,
        "prompt_tokens": metrics["llm/prompt_tokens"],
        "tokens_per_s": tokens / seconds,
        "failed": failed,
        "decodes": after["n_decode_total"] - before["n_decode_total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=8, help="llama-server slots")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--embd", type=int, default=1024, help="model width")
    parser.add_argument("--layers", type=int, default=8, help="model depth")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "llm_batching.txt")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = write_tiny_model(
            Path(tmp) / "random.gguf", n_embd=args.embd, n_layer=args.layers, n_head=8,
            n_ff=args.embd * 11 // 4,
        )  # fmt: skip
        with llama_server(model, parallel=args.parallel, threads=args.threads) as url:
            _run(url, 2, args.parallel, batched=True)  # warm-up
            sequential = _run(url, args.prompts, args.parallel, batched=False)
            batched = _run(url, args.prompts, args.parallel, batched=True)
    ratio = batched["tokens_per_s"] / sequential["tokens_per_s"]
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"llama-server CPU --threads {args.threads} --parallel {args.parallel}, random Llama "
        f"({args.embd}-d, {args.layers} layers, f32), reference output-schema, "
        f"{args.prompts} prompts",
    ]
    for name, run in (("sequential", sequential), ("batched", batched)):
        lines.append(
            f"{name:>10}: {run['completion_tokens']:.0f} completion tokens "
            f"({run['prompt_tokens']:.0f} prompt) in {run['seconds']:.2f}s = "
            f"{run['tokens_per_s']:.1f} tokens/s, {run['decodes']:.0f} decode steps, "
            f"{run['failed']:.0f} failed"
        )
    lines.append(f"     ratio: batched / sequential = {ratio:.2f}x")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as handle:
        handle.write(text + "\n\n")


if __name__ == "__main__":
    main()

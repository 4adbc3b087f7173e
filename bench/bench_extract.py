"""Latency of extracting one receipt with the embedded model on 2 CPU threads (goal: median < 3 s).

Each receipt goes through exactly what `POST /v1/extract` runs, minus HTTP: `extraction_job` (prompt,
grammar, log-probabilities), the llama.cpp backend, and `finish_extraction` (repair, validation, rules,
confidence). The clock runs from building the job to the finished result. The backend stays loaded, as it
does in the server, so the prompt prefix that every extraction shares (system prompt, field guide) is
evaluated once, as it is in production after the first request. One warm-up receipt is not counted.

Reports, per receipt and overall: total time, time to the first token (prompt evaluation), output tokens
(forced ones included: the backend evaluates the text the schema forces in batches, so "decode" below is
tokens per second of output, not of decode steps) and the load average before and after, because on a
shared machine a busy neighbour changes the numbers more than any code change.

`--model PATH` runs another GGUF as it is, e.g. the package's own Q4_1 file, which the embedded backend
otherwise converts to Q8_0 (`requantized_embedded_model`).

Usage: python bench/bench_extract.py [--dataset PATH.jsonl] [--receipts 10] [--threads 2] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from deskpilot.inference import Finished
from deskpilot.inference.extraction import BUILT_IN, Generated, extraction_job, finish_extraction
from deskpilot.inference.extraction.evaluate import load_dataset
from deskpilot.inference.llama import LlamaCppBackend

DEFAULT_DATASET = (
    Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sroie-dev" / "sroie_dev_100.jsonl"
)


async def extract_once(backend: LlamaCppBackend, text: str) -> dict[str, float]:
    schema = BUILT_IN["invoice"]
    started = time.perf_counter()
    job = extraction_job(
        schema, text=text, context_length=backend.info.context_length, count_tokens=backend.count_tokens
    )
    tokens, usage, first = [], None, None
    async for item in backend.stream(job.request):
        if isinstance(item, Finished):
            usage = item.usage
            continue
        if first is None:
            first = time.perf_counter()
        tokens.append(item)
    generated_at = time.perf_counter()
    assert usage is not None and first is not None
    result = finish_extraction(
        schema,
        text=text,
        generated=Generated(
            text="".join(t.text for t in tokens), tokens=tokens, finish_reason=usage.finish_reason
        ),
    )
    done = time.perf_counter()
    return {
        "total": done - started,
        "ttft": first - started,
        "finish": done - generated_at,
        "prompt_tokens": usage.prompt_tokens,
        "tokens": usage.completion_tokens,
        "decode_tps": (usage.completion_tokens - 1) / max(generated_at - first, 1e-9),
        "confidence": result.confidence,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--receipts", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, help="a GGUF file to run as it is (default: embedded)")
    args = parser.parse_args()
    examples = load_dataset(args.dataset.read_text(encoding="utf-8").splitlines())[: args.receipts + 1]
    load_before = os.getloadavg()
    backend = LlamaCppBackend(args.model, threads=args.threads)
    try:
        await extract_once(backend, examples[0].text)  # warm-up: page in the weights, cache the shared prefix
        runs = []
        for example in examples[1:]:
            run = await extract_once(backend, example.text)
            runs.append(run)
            print(
                f"{example.id}: {run['total']:.2f} s (first token {run['ttft']:.2f} s for "
                f"{run['prompt_tokens']} prompt tokens, {run['tokens']} output tokens at "
                f"{run['decode_tps']:.0f}/s, "
                f"finish {run['finish'] * 1000:.0f} ms, confidence {run['confidence']:.2f})",
                flush=True,
            )
    finally:
        backend.close()
    totals = [r["total"] for r in runs]
    print(f"\n{len(runs)} receipts, {args.threads} threads, {backend.info.model_id}")
    print(
        f"median {statistics.median(totals):.2f} s, min {min(totals):.2f} s, max {max(totals):.2f} s; "
        f"median first token {statistics.median(r['ttft'] for r in runs):.2f} s, median output tokens "
        f"{statistics.median(r['tokens'] for r in runs):.0f}, median decode "
        f"{statistics.median(r['decode_tps'] for r in runs):.0f} tokens/s"
    )
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    asyncio.run(main())

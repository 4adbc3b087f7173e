"""Threads per request on a busy laptop (issue 14): the adaptive default against every fixed choice.

The same 400-word email summary (bench/emails.json, `summarize_job`, `LlamaCppBackend`), timed with the
CPU idle and with one core held by a neighbour: a child process spinning `while True: pass`, not pinned,
as another application would be. (`--half` adds a neighbour that spins half the time.) For each
condition, in the same run, each configuration runs in its own process, because OpenMP reads
`OMP_WAIT_POLICY` once, when llama.cpp is loaded:

- fixed 1 thread, fixed N threads (N = `default_threads()`, the default before issue 14, "today"),
  fixed N threads with `OMP_WAIT_POLICY=PASSIVE`;
- adaptive: no `threads` setting, so each request chooses from the free cores (inference/threads.py).

Every timed summary evaluates its whole prompt (the KV cache is cleared first) and follows an untimed
warm-up. Reports the median of `--reps` runs, the ratio adaptive / best fixed per condition (goal under
contention: <= 1.10) and adaptive / today when idle (goal: no slower; within 5% counts as noise here).

Usage: python bench/bench_threads.py [--reps 3] [--half]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONTEXT = 4096
NEIGHBOURS = {
    "idle": None,
    "busy": "while True: pass",
    "half": (
        "import time\nwhile True:\n    end = time.perf_counter() + 0.05\n"
        "    while time.perf_counter() < end: pass\n    time.sleep(0.05)"
    ),
}
DESCRIBED = {
    "idle": "no neighbour",
    "busy": "one core held by a child process spinning `while True: pass` (not pinned)",
    "half": "a child process spinning 50 ms, sleeping 50 ms (half a core, not pinned)",
}


def configurations(cores: int) -> dict[str, tuple[int | None, dict[str, str]]]:
    """name -> (threads setting, extra environment)."""
    configs: dict[str, tuple[int | None, dict[str, str]]] = {}
    for n in sorted({1, max(1, cores - 1), cores}):
        configs[f"fixed {n}" + (" (today)" if n == cores else "")] = (n, {})
    configs[f"fixed {cores}, PASSIVE"] = (cores, {"OMP_WAIT_POLICY": "PASSIVE"})
    configs["adaptive"] = (None, {})
    return configs


def email_400() -> dict[str, Any]:
    emails = json.loads((HERE / "emails.json").read_text())
    return min(emails, key=lambda e: abs(len(e["body"].split()) - 400))


async def _time_summaries(threads: int | None, reps: int, cache: Path) -> dict[str, Any]:
    from deskpilot.inference import Email, Finished, summarize_job
    from deskpilot.inference.llama import LlamaCppBackend

    e = email_400()
    email = Email(body=e["body"], subject=e["subject"], sender=e["from"], to=tuple(e.get("to", ())))
    request = summarize_job(context_length=CONTEXT, email=email).request
    backend = LlamaCppBackend(context_length=CONTEXT, threads=threads, cache_dir=cache)
    times, used = [], []
    try:
        for rep in range(reps + 1):  # the first is the warm-up
            await asyncio.sleep(0.3)  # let the previous run's worker threads go idle
            backend._llm.reset()  # forget the cached prompt: every run evaluates all of it
            start = time.perf_counter()
            async for item in backend.stream(request):
                if isinstance(item, Finished):
                    break
            if rep:
                times.append(time.perf_counter() - start)
                used.append(backend.last_threads.describe() if backend.last_threads else "?")
    finally:
        backend.close()
    return {"times": times, "threads": used}


def run_configuration(threads: int | None, env: dict[str, str], reps: int, cache: Path) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    child = ["--child", str(threads or 0), "--reps", str(reps), "--cache", str(cache)]
    out = subprocess.run(
        [sys.executable, __file__, *child], env={**base, **env}, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"configuration threads={threads} {env} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_condition(name: str, reps: int, cache: Path, cores: int) -> dict[str, dict[str, Any]]:
    code = NEIGHBOURS[name]
    neighbour = subprocess.Popen([sys.executable, "-c", code]) if code else None
    try:
        time.sleep(1.0)  # the neighbour is running before anything is measured
        print(f"\n{name}: {DESCRIBED[name]}; load average {os.getloadavg()[0]:.2f}", flush=True)
        results = {}
        for config, (threads, env) in configurations(cores).items():
            results[config] = run_configuration(threads, env, reps, cache)
            r = results[config]
            print(
                f"  {config:<20} {statistics.median(r['times']):6.2f} s   "
                f"runs {' '.join(f'{t:.2f}' for t in r['times'])}   [{r['threads'][-1]}]",
                flush=True,
            )
        return results
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()


def report(name: str, results: dict[str, dict[str, Any]]) -> None:
    medians = {config: statistics.median(r["times"]) for config, r in results.items()}
    fixed = {c: t for c, t in medians.items() if c.startswith("fixed")}
    best = min(fixed, key=fixed.__getitem__)
    ratio = medians["adaptive"] / fixed[best]
    verdict = "met" if ratio <= 1.10 else "MISSED"
    print(f"  adaptive / best fixed ({best}): {ratio:.2f} (goal <= 1.10): {verdict}")
    if name == "idle":
        today = next(c for c in medians if c.endswith("(today)"))
        ratio = medians["adaptive"] / medians[today]
        verdict = "met" if ratio <= 1.05 else "MISSED"
        print(f"  adaptive / today ({today}): {ratio:.2f} (goal: no slower; <= 1.05 as noise): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--half", action="store_true", help="add a neighbour that spins half the time")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # threads (0: adaptive) in a child
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        result = asyncio.run(_time_summaries(args.child or None, args.reps, args.cache))
        print(json.dumps(result))
        return

    from deskpilot.inference.llama import default_threads

    cores = default_threads()
    words = len(email_400()["body"].split())
    print(
        f"Threads per request: a {words}-word email summary, SmolLM2-135M as Q8_0, {cores} usable CPUs, "
        f"median of {args.reps} (each configuration in its own process)"
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="deskpilot-bench-threads-") as cache:
        for name in ["idle", "busy", *(["half"] if args.half else [])]:
            report(name, run_condition(name, args.reps, Path(cache), cores))
    print(f"\n({time.monotonic() - started:.0f} s in all; load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()

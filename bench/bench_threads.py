"""Threads per request on a busy laptop (issue 14): the adaptive default against every fixed choice.

The same 400-word email summary (bench/emails.json, `summarize_job`, `LlamaCppBackend`), timed with the
CPU idle and with one core held by a neighbour: a child process spinning `while True: pass`, not pinned,
as another application would be. (`--half` adds a neighbour that spins half the time.) Configurations:

- fixed 1 thread, fixed N threads (N = `default_threads()`, the default before issue 14, "today"),
  fixed N threads with `OMP_WAIT_POLICY=PASSIVE`;
- adaptive: no `threads` setting, so each request chooses from the free cores (inference/threads.py).

Each configuration lives in its own process (OpenMP reads `OMP_WAIT_POLICY` once, when llama.cpp loads),
started once and warmed up; the runs then go round-robin over the configurations, so that load from
elsewhere on a shared machine falls on all of them alike. Before each run the bench waits `GAP` seconds:
the adaptive backend looks back about a second, and the previous configuration's run is another process
to it. Every run evaluates its whole prompt (the KV cache is cleared first). A run still going after
`--cap` seconds is stopped and counts as the cap (shown as ">").

Reports the median of `--reps` runs, adaptive / best fixed per condition (goal under contention:
<= 1.10) and adaptive / today when idle (goal: no slower; within 5% counts as noise here), with the load
average, since other work on the machine moves every figure.

Usage: python bench/bench_threads.py [--reps 3] [--cap 20] [--half]
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
GAP = 1.5
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


async def serve_runs(threads: int | None, cap: float, cache: Path) -> None:
    """In a configuration's process: load, warm up, say "ready", then time one summary per line read."""
    from deskpilot.inference import Email, summarize_job
    from deskpilot.inference.llama import LlamaCppBackend

    e = email_400()
    email = Email(body=e["body"], subject=e["subject"], sender=e["from"], to=tuple(e.get("to", ())))
    request = summarize_job(context_length=CONTEXT, email=email).request
    backend = LlamaCppBackend(context_length=CONTEXT, threads=threads, cache_dir=cache)

    async def summary() -> None:
        async for _ in backend.stream(request):
            pass

    async def timed() -> dict[str, Any]:
        backend._llm.reset()  # forget the cached prompt: every run evaluates all of it
        start = time.perf_counter()
        capped = False
        try:
            await asyncio.wait_for(summary(), cap)
        except TimeoutError:
            capped = True
        chosen = backend.last_threads.describe() if backend.last_threads else "?"
        return {"time": time.perf_counter() - start, "capped": capped, "threads": chosen}

    try:
        await timed()  # warm-up: page the weights in, start the thread pool
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            print(json.dumps(await timed()), flush=True)
    finally:
        backend.close()


class Configuration:
    """One configuration's process, driven a run at a time."""

    def __init__(self, threads: int | None, env: dict[str, str], cap: float, cache: Path) -> None:
        base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        args = ["--child", str(threads or 0), "--cap", str(cap), "--cache", str(cache)]
        self._proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            env={**base, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("ready")

    def _expect(self, what: str) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line or (what and line != what):
            raise SystemExit(f"a configuration's process failed (exit {self._proc.poll()}): {line!r}")
        return line

    def run(self) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write("run\n")
        self._proc.stdin.flush()
        return dict(json.loads(self._expect("")))

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(30)


def run_condition(name: str, configs: dict[str, Configuration], reps: int) -> dict[str, list[dict[str, Any]]]:
    code = NEIGHBOURS[name]
    neighbour = subprocess.Popen([sys.executable, "-c", code]) if code else None
    try:
        print(f"\n{name}: {DESCRIBED[name]}; load average {os.getloadavg()[0]:.2f}", flush=True)
        results: dict[str, list[dict[str, Any]]] = {config: [] for config in configs}
        for rep in range(reps):
            order = list(configs) if rep % 2 == 0 else list(reversed(configs))
            for config in order:
                time.sleep(GAP)
                results[config].append(configs[config].run())
        for config, runs in results.items():
            shown = " ".join(f"{'>' if r['capped'] else ''}{r['time']:.2f}" for r in runs)
            median = statistics.median(r["time"] for r in runs)
            print(f"  {config:<20} {median:6.2f} s   runs {shown:<22} [{runs[-1]['threads']}]", flush=True)
        return results
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()


def report(name: str, results: dict[str, list[dict[str, Any]]]) -> None:
    medians = {config: statistics.median(r["time"] for r in runs) for config, runs in results.items()}
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
    parser.add_argument("--cap", type=float, default=20.0, help="seconds after which a run is stopped")
    parser.add_argument("--half", action="store_true", help="add a neighbour that spins half the time")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # threads (0: adaptive) in a child
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        asyncio.run(serve_runs(args.child or None, args.cap, args.cache))
        return

    from deskpilot.inference.llama import default_threads

    cores = default_threads()
    words = len(email_400()["body"].split())
    print(
        f"Threads per request: a {words}-word email summary, SmolLM2-135M as Q8_0, {cores} usable CPUs, "
        f"median of {args.reps}, runs round-robin over one process per configuration"
    )
    started = time.monotonic()
    configs: dict[str, Configuration] = {}
    with tempfile.TemporaryDirectory(prefix="deskpilot-bench-threads-") as cache:
        try:
            for name, (threads, env) in configurations(cores).items():
                configs[name] = Configuration(threads, env, args.cap, Path(cache))
            for condition in ["idle", "busy", *(["half"] if args.half else [])]:
                report(condition, run_condition(condition, configs, args.reps))
        finally:
            for config in configs.values():
                config.close()
    print(f"\n({time.monotonic() - started:.0f} s in all; load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()

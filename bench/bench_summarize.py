"""Raw llama-cpp-python streaming vs `POST /v1/summarize` over HTTP: same model, settings, prompts, run.

Both sides get identical chat messages (built by the same task code), sampling parameters and thread
count. The raw side calls `Llama.create_chat_completion(stream=True)` in this process; the server side is
`deskpilot serve` in a child process, read as SSE over a keep-alive HTTP connection, as the task pane
does. Emails are visited round-robin and the order of the two sides alternates per round, so both
models see the same sequence of prompts (same prompt-prefix reuse) and drift hits both equally.

Usage: python bench/bench_summarize.py [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse
from llama_cpp import Llama

from deskpilot.inference import Email, summarize_job
from deskpilot.inference.llama import default_threads, requantized_embedded_model
from deskpilot.server.core.token import ensure_token

HERE = Path(__file__).resolve().parent
CONTEXT = 4096


def load_emails() -> list[dict]:
    return json.loads((HERE / "emails.json").read_text())


def as_email(e: dict) -> Email:
    return Email(
        body=e["body"],
        subject=e["subject"],
        sender=e["from"],
        to=tuple(e.get("to", ())),
        cc=tuple(e.get("cc", ())),
        date=e.get("date"),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_once(llm: Llama, email: dict) -> tuple[float, float, str]:
    job = summarize_job(context_length=CONTEXT, email=as_email(email))
    r = job.request
    messages = [{"role": m.role, "content": m.content} for m in r.messages]
    t0 = time.perf_counter()
    first, parts = None, []
    for chunk in llm.create_chat_completion(
        messages,
        stream=True,
        max_tokens=r.max_tokens,
        temperature=r.temperature,
        top_p=r.top_p,
        repeat_penalty=r.repeat_penalty,
        seed=r.seed,
    ):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            first = first or time.perf_counter()
            parts.append(text)
    end = time.perf_counter()
    return (first or end) - t0, end - t0, "".join(parts)


def server_once(client: httpx.Client, email: dict, prepare: bool = False) -> tuple[float, float, str]:
    """Time one summary over HTTP. With `prepare`, the task pane's /v1/prepare (sent when the item opens)
    runs first, untimed: what is measured is the click."""
    fields = ("from", "to", "cc", "subject", "date", "body")
    # cache: false: every round is generated, as the raw side's is (the result cache is bench_models.py's).
    body = {"email": {k: v for k, v in email.items() if k in fields}, "cache": False}
    if prepare:
        assert client.post("/v1/prepare", json=body).json()["prepared"]
    t0 = time.perf_counter()
    first, parts = None, []
    with connect_sse(client, "POST", "/v1/summarize", json=body) as source:
        for sse in source.iter_sse():
            if sse.event == "token":
                first = first or time.perf_counter()
                parts.append(sse.json()["text"])
            elif sse.event == "done":
                break
            elif sse.event == "error":
                raise RuntimeError(sse.data)
    end = time.perf_counter()
    return (first or end) - t0, end - t0, "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    emails = load_emails()

    home = Path(tempfile.mkdtemp(prefix="deskpilot-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "DESKPILOT_HOME": str(home),
        "DESKPILOT_THREADS": str(args.threads),
        "DESKPILOT_CONTEXT_LENGTH": str(CONTEXT),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "deskpilot.server.cli", "serve", "--http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    weights, _ = requantized_embedded_model(home / "cache", args.threads)  # the weights the server runs
    llm = Llama(
        model_path=str(weights),
        n_ctx=CONTEXT,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    results: dict[str, dict[int, list[tuple[float, float, str]]]] = {"raw": {}, "server": {}, "prepared": {}}
    try:
        # The per-user token, as `deskpilot install` makes it before the server first starts.
        auth = {"Authorization": f"Bearer {ensure_token(home / 'token')}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, headers=auth) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/v1/models").json()["state"] == "ready":
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not become ready")
                time.sleep(0.05)
            # One untimed warm-up each: page the weights in, start thread pools.
            raw_once(llm, emails[0])
            server_once(client, emails[0])
            for rnd in range(args.rounds):
                for i, email in enumerate(emails):
                    sides = ["raw", "server"] if (rnd + i) % 2 == 0 else ["server", "raw"]
                    for side in [*sides, "prepared"]:
                        time.sleep(0.3)  # let the other side's worker threads go idle
                        if side == "raw":
                            run = raw_once(llm, email)
                        else:
                            run = server_once(client, email, prepare=side == "prepared")
                        results[side].setdefault(i, []).append(run)
    finally:
        server.terminate()
        server.wait(10)
        llm.close()

    report(emails, results, args)


def report(emails: list[dict], results: dict, args: argparse.Namespace) -> None:
    med = statistics.median
    print(
        f"\nSummarize: raw llama-cpp-python vs POST /v1/summarize over HTTP "
        f"({args.rounds} rounds, {args.threads} threads, {os.cpu_count()} CPUs, SmolLM2-135M as Q8_0)\n"
    )
    print(
        f"{'email':>10} | {'raw ttft':>9} {'raw total':>9} | {'srv ttft':>9} {'srv total':>9} | "
        f"{'ttft +ms':>8} {'total ratio':>11} | same text"
    )
    ttft_overheads, ratios = [], []
    for i, email in enumerate(emails):
        raw, srv = results["raw"][i], results["server"][i]
        rt, rT = med(r[0] for r in raw), med(r[1] for r in raw)
        st, sT = med(r[0] for r in srv), med(r[1] for r in srv)
        same = sum(a[2] == b[2] for a, b in zip(raw, srv, strict=True))
        ttft_overheads.append((st - rt) * 1000)
        ratios.append(sT / rT)
        words = len(email["body"].split())
        print(
            f"{words:>7} w. | {rt:>8.3f}s {rT:>8.3f}s | {st:>8.3f}s {sT:>8.3f}s | {(st - rt) * 1000:>+8.1f} "
            f"{sT / rT:>11.3f} | {same}/{len(raw)}"
        )
    all_raw = [r for runs in results["raw"].values() for r in runs]
    all_srv = [r for runs in results["server"].values() for r in runs]
    raw_total, srv_total = med(r[1] for r in all_raw), med(r[1] for r in all_srv)
    raw_ttft, srv_ttft = med(r[0] for r in all_raw), med(r[0] for r in all_srv)
    ratio = srv_total / raw_total
    overhead = med(ttft_overheads)
    i400 = min(range(len(emails)), key=lambda i: abs(len(emails[i]["body"].split()) - 400))
    srv400 = med(r[1] for r in results["server"][i400])
    print("\nmedians over all runs")
    print(
        f"  time to first token: raw {raw_ttft * 1000:.0f} ms, server {srv_ttft * 1000:.0f} ms; "
        f"median per-email overhead {overhead:+.1f} ms "
        f"(goal <= 30 ms): {'met' if overhead <= 30 else 'MISSED'}"
    )
    print(
        f"  total time: raw {raw_total:.3f} s, server {srv_total:.3f} s; ratio server/raw {ratio:.3f} "
        f"(goal <= 1.05): {'met' if ratio <= 1.05 else 'MISSED'}"
    )
    print(
        f"  {len(emails[i400]['body'].split())}-word email, server median total {srv400:.3f} s "
        f"(goal < 2 s on 2 cores): {'met' if srv400 < 2 else 'MISSED'}"
    )
    prep = results["prepared"]
    print("\nwith /v1/prepare sent when the item opens (click to first token / total, median):")
    for i, email in enumerate(emails):
        warm, cold = prep[i], results["server"][i]
        print(
            f"  {len(email['body'].split()):>4} words: first token {med(r[0] for r in warm) * 1000:6.0f} ms, "
            f"total {med(r[1] for r in warm):.3f} s (cold server: {med(r[0] for r in cold) * 1000:.0f} ms"
            f" / {med(r[1] for r in cold):.3f} s)"
        )


if __name__ == "__main__":
    main()

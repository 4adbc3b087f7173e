"""Model profiles: what routing through Deskpilot costs against a remote server, how fast a failed remote
hands over to the local model, and what the result cache answers in.

1. Overhead: `deskpilot serve` routing summaries to a profile on `llama_cpp.server` (the embedded model,
   on 127.0.0.1), against a client streaming the same chat messages and parameters from that server
   directly. Same prompts, same run, alternating order. Goal: total-time ratio <= 1.03, first-token
   overhead <= 10 ms.
2. Fallback: the time from sending a request whose remote profile fails (connection refused; a stall
   past the profile's read timeout) to the first token of the local model, against the local model's own
   first-token time for the same request.
3. Cache hit: a repeated summary answered from lineage, as the client sees it. Goal: < 20 ms.

Usage: python bench/bench_models.py [--rounds 3]
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from openai_server import Fault, FaultProxy, llama_server  # noqa: E402  (the tests' server helpers)

from deskpilot.inference import Email, summarize_job  # noqa: E402
from deskpilot.server.core.token import ensure_token  # noqa: E402

CONTEXT = 2048
READ_TIMEOUT = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def emails() -> list[dict[str, Any]]:
    return list(json.loads((HERE / "emails.json").read_text()))


def as_email(e: dict[str, Any]) -> Email:
    return Email(
        body=e["body"], subject=e["subject"], sender=e["from"], to=tuple(e.get("to", ())), date=e.get("date")
    )


def body_of(e: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in e.items() if k in ("from", "to", "cc", "subject", "date", "body")}


@contextmanager
def deskpilot(models: dict[str, Any], routes: dict[str, Any]) -> Iterator[httpx.Client]:
    home = Path(tempfile.mkdtemp(prefix="deskpilot-bench-models-"))
    lines = [f"context_length = {CONTEXT}", "worker = false"]
    for name, profile in models.items():
        lines.append(f"[models.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in profile.items()]
    for task, route in routes.items():
        lines.append(f"[routes.{task}]")
        lines.append(f"use = {json.dumps(route)}")
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    port = free_port()
    env = {**os.environ, "DESKPILOT_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "deskpilot.server.cli", "serve", "--http", "--port", str(port), "--no-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    auth = {"Authorization": f"Bearer {ensure_token(home / 'token')}"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, headers=auth) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if client.get("/v1/models").json()["state"] == "ready":
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("deskpilot did not become ready")
                time.sleep(0.05)
            yield client
    finally:
        server.terminate()
        server.wait(10)


def through_deskpilot(client: httpx.Client, body: dict[str, Any]) -> tuple[float, float, str, list[str]]:
    """(first token s, total s, text, profiles named by meta events) of one streamed summary."""
    t0 = time.perf_counter()
    first, parts, profiles = None, [], []
    with connect_sse(client, "POST", "/v1/summarize", json=body) as source:
        for sse in source.iter_sse():
            if sse.event == "meta":
                profiles.append(sse.json()["profile"])
            elif sse.event == "token":
                first = first or time.perf_counter()
                parts.append(sse.json()["text"])
            elif sse.event == "done":
                break
            elif sse.event == "error":
                raise RuntimeError(sse.data)
    end = time.perf_counter()
    return (first or end) - t0, end - t0, "".join(parts), profiles


def direct(client: httpx.Client, e: dict[str, Any]) -> tuple[float, float, str]:
    """The same summary straight from the server: the messages and parameters Deskpilot would send."""
    request = summarize_job(context_length=CONTEXT, email=as_email(e)).request
    payload = {
        "model": "smollm2",
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "stop": list(request.stop) or None,
        "repeat_penalty": request.repeat_penalty,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first, parts = None, []
    with client.stream("POST", "/v1/chat/completions", json=payload) as r:
        for line in r.iter_lines():
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    first = first or time.perf_counter()
                    parts.append(text)
    end = time.perf_counter()
    return (first or end) - t0, end - t0, "".join(parts)


def remote(base: str, **extra: Any) -> dict[str, Any]:
    return {
        "backend": "openai",
        "base_url": f"{base}/v1",
        "model": "smollm2",
        "json_schema": "json_object",
        "repeat_penalty_field": "repeat_penalty",
        "context_length": CONTEXT,
        "locality": "local",
        "max_retries": 0,
        "read_timeout": READ_TIMEOUT,
        **extra,
    }


def overhead(upstream: str, rounds: int) -> None:
    mails = emails()
    with (
        deskpilot({"box": remote(upstream)}, {"summarize": ["box"]}) as dp,
        httpx.Client(base_url=upstream, timeout=120) as raw,
    ):
        through_deskpilot(dp, {"email": body_of(mails[0]), "cache": False})
        direct(raw, mails[0])
        sides: dict[str, list[tuple[float, float]]] = {"direct": [], "deskpilot": []}
        same = 0
        for rnd in range(rounds):
            for i, e in enumerate(mails):
                order = ["direct", "deskpilot"] if (rnd + i) % 2 == 0 else ["deskpilot", "direct"]
                texts = {}
                for side in order:
                    time.sleep(0.3)
                    if side == "direct":
                        ttft, total, text = direct(raw, e)
                    else:
                        ttft, total, text, _ = through_deskpilot(dp, {"email": body_of(e), "cache": False})
                    sides[side].append((ttft, total))
                    texts[side] = text
                same += texts["direct"] == texts["deskpilot"]
    n = len(sides["direct"])
    d_total = sum(t for _, t in sides["direct"])
    p_total = sum(t for _, t in sides["deskpilot"])
    d_ttft = statistics.median(f for f, _ in sides["direct"]) * 1000
    p_ttft = statistics.median(f for f, _ in sides["deskpilot"]) * 1000
    gaps = sorted((p[0] - d[0]) * 1000 for p, d in zip(sides["deskpilot"], sides["direct"], strict=True))
    print(
        f"\n1. Deskpilot -> llama_cpp.server vs direct "
        f"({n} summaries each, {len(mails)} emails x {rounds} rounds)"
    )
    print(
        f"   total time: direct {d_total:.2f} s, through Deskpilot {p_total:.2f} s, "
        f"ratio {p_total / d_total:.3f} (goal <= 1.03)"
    )
    print(
        f"   first token, median: direct {d_ttft:.1f} ms, Deskpilot {p_ttft:.1f} ms, "
        f"overhead {p_ttft - d_ttft:.1f} ms (goal <= 10 ms)"
    )
    print(f"   first-token overhead per pair, median {statistics.median(gaps):.1f} ms")
    print(f"   identical text on both paths: {same} of {n}")


def fallback(upstream: str, rounds: int) -> None:
    proxy = FaultProxy(upstream)
    mails = emails()
    closed = free_port()
    models = {"down": remote(f"http://127.0.0.1:{closed}"), "stalled": remote(proxy.url)}
    routes = {"summarize": ["down", "embedded"], "rewrite": ["stalled", "embedded"]}
    try:
        with deskpilot(models, routes) as dp:
            local, refused, stalled = [], [], []
            for rnd in range(rounds):
                e = mails[rnd % len(mails)]
                body = {"email": body_of(e), "cache": False}
                local.append(through_deskpilot(dp, {**body, "profile": "embedded"})[0])
                ttft, _, _, profiles = through_deskpilot(dp, body)
                assert profiles == ["embedded"] or profiles[-1] == "embedded", profiles
                refused.append(ttft)
                proxy.faults[:] = [Fault(stall=READ_TIMEOUT + 3)]
                t0 = time.perf_counter()
                first = None
                with connect_sse(
                    dp, "POST", "/v1/rewrite", json={"text": e["body"][:800], "cache": False}
                ) as s:
                    for sse in s.iter_sse():
                        if sse.event == "token":
                            first = time.perf_counter()
                            break
                stalled.append((first or time.perf_counter()) - t0)
            dp.post("/v1/summarize", json={"text": "x y z", "profile": "embedded"})  # settle
    finally:
        proxy.close()
    base = statistics.median(local) * 1000
    print(
        f"\n2. Fallback to the embedded model "
        f"({rounds} requests each; the profile's read timeout {READ_TIMEOUT} s)"
    )
    print(f"   local model alone: first token {base:.0f} ms (median)")
    print(
        f"   connection refused: first local token {statistics.median(refused) * 1000:.0f} ms, "
        f"{statistics.median(refused) * 1000 - base:.0f} ms more than local alone"
    )
    print(
        f"   stalled server: first local token {statistics.median(stalled) * 1000:.0f} ms "
        f"(read timeout {READ_TIMEOUT * 1000:.0f} ms + the local model's first token)"
    )


def cache_hits(rounds: int) -> None:
    mails = emails()
    with deskpilot({}, {}) as dp:
        generated, hits = [], []
        for i in range(rounds * 3):
            mail = body_of(mails[i % len(mails)])
            body = {"email": {**mail, "body": f"{mail['body']}\n\nRef {i}."}}  # new to the cache
            first, hit = through_deskpilot(dp, body), through_deskpilot(dp, body)
            assert hit[2] == first[2]
            generated.append(first[1])
            hits.append(hit[1])
    hits.sort()
    print(f"\n3. Result cache ({len(hits)} repeats of a summary over HTTP, embedded model)")
    print(
        f"   generated: median {statistics.median(generated) * 1000:.0f} ms; from the cache: median "
        f"{statistics.median(hits) * 1000:.1f} ms, p90 {hits[int(len(hits) * 0.9)] * 1000:.1f} ms "
        "(goal < 20 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"bench_models: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start")
    with llama_server(n_ctx=CONTEXT) as upstream:
        overhead(upstream, args.rounds)
        fallback(upstream, args.rounds)
    cache_hits(args.rounds)


if __name__ == "__main__":
    main()

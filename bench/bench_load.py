"""Load test: many task panes at once against the real server with a scripted model, then a leak check.

What runs: the production app (`create_app`) in a child process (bench/_load_server.py) on plain HTTP,
with `ScriptedBackend` as the model: 40 tokens 2 ms apart, so a summary streams for about 0.1 s and the
figures measure the server (HTTP, SSE, the model gate, lineage writes with fsync), not a model. This
process is the load generator (asyncio + httpx), so the two do not share a GIL; on the usual 2-core
machine they do share the cores, and the client's own CPU time and event-loop lag are reported so that
a saturated client can be told from a slow server.

The load, by default (as the requirement states it):
- 200 concurrent clients for 60 s, each on its own keep-alive connection, looping over a mix:
  40 % `POST /v1/summarize` read as SSE (whole stream: time to first token and to `done`),
  20 % `GET /v1/runs/{id}` (a run a client saw finish), 15 % `GET /healthz`, 15 % `GET /v1/models`,
  10 % `POST /v1/prepare` (JSON; the pane sends it when an item opens). Between requests a client thinks
  0-2x`--think-ms` (random). A 429 (the model gate's line is full) is counted, and the client waits out
  its Retry-After (capped at `--max-backoff`) as the task pane does, then goes on.
- 50 more clients that try to start a summary at a random time in the first half of the run (most
  tries get 429, so a vanishing client may need many tries, honouring Retry-After, before it is
  admitted) and vanish mid-stream: each closes its connection after a random 0-5 events (0: right after
  the headers, while possibly still in line; 1: after `meta`; 2+: after 1+ tokens). Those still not
  admitted when the load ends are reported as never admitted.

Latencies (p50/p99) are of successful requests, from sending the request to the last byte (SSE: to the
`done` event). An error is anything but 2xx and 429: other statuses, timeouts, connection errors, an SSE
`error` event, a stream without `done`, or a token count that disagrees with `done`.

Before the load, a short warm-up (same mix, fewer clients) runs every code path once, then the state
is sampled as the baseline (`GET /bench/state?gc=1`). After the load, the gate must drain on its own
(nobody waiting, not busy, no generation running, no lineage run left open) within `--drain-timeout`;
the state is then sampled again after a forced full GC, which tells a place in line held until the
cyclic GC runs from one that is never given back. RSS, asyncio tasks and open file descriptors are
compared with the baseline. The exit status is 1 if the gate did not drain on its own, a run stayed
open, a vanished client's run was not closed, any non-429 error happened, the server logged an error or
did not stop cleanly, tasks/fds did not return near the baseline, or RSS grew more than
`--max-rss-growth-mb`. Its default, 50 MB, is ~2 kB per request of a 60 s run (~25k requests): a leaked
stream, task or connection keeps its frames, request, response and buffers, kilobytes to tens of
kilobytes each, and crosses it within a few thousand requests, while what legitimately stays resident
after the load (allocator arenas from the peak of 250 connections, SQLite's page cache, the worker
threads' stacks) measured +8 MB on a 2-core machine.

Usage:
  .venv/bin/python bench/bench_load.py            # 200 clients + 50 vanishing, 60 s
  .venv/bin/python bench/bench_load.py --quick    # 40 clients + 10 vanishing, 10 s (smoke run)
  .venv/bin/python bench/bench_load.py --clients 100 --duration 30 --vanishing 20 --max-queue 8
Figures go to stdout and bench/results/load.json; the server's log to bench/results/load_server.log.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import random
import re
import resource
import select
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deskpilot.server.core.token import read_token

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SERVER_SCRIPT = HERE / "_load_server.py"

# Request mix: (endpoint name, weight).
MIX: tuple[tuple[str, float], ...] = (
    ("summarize", 0.40),
    ("runs", 0.20),
    ("healthz", 0.15),
    ("models", 0.15),
    ("prepare", 0.10),
)
SSE_ENDPOINT = "summarize"
# When the vanishing clients first try, as fractions of the run: early enough to get through the 429s.
VANISH_START = (0.05, 0.5)


# -- recording --------------------------------------------------------------------------------------------


@dataclass
class EndpointStats:
    latencies_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    ok: int = 0
    busy: int = 0  # 429
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return self.ok + self.busy + sum(self.errors.values())


@dataclass
class Vanished:
    planned_events: int
    events_read: int = 0
    busy: int = 0
    run_id: str | None = None
    tokens_read: int = 0
    admitted: bool = False
    error: str | None = None


@dataclass
class Recorder:
    endpoints: dict[str, EndpointStats] = field(
        default_factory=lambda: {name: EndpointStats() for name, _ in MIX}
    )
    run_ids: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    vanished: list[Vanished] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


# -- SSE ----------------------------------------------------------------------------------------------------


async def iter_sse(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body; comments (keep-alives) are skipped."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


# -- the requests -----------------------------------------------------------------------------------------

Op = Callable[[httpx.AsyncClient, Recorder, random.Random], Awaitable[float | None]]


def summary_body(rng: random.Random, emails: list[dict[str, Any]]) -> dict[str, Any]:
    """A summary request the model must answer (`cache: false`: the load is on the model, not the cache)."""
    if emails and rng.random() < 0.8:
        ref = f"bench-{rng.randrange(10**6)}"
        return {"email": rng.choice(emails), "client": "outlook", "sourceRef": ref, "cache": False}
    text = "Please confirm the budget numbers by Friday and say whether the offsite moves. " * 3
    return {"text": text, "cache": False}


async def summarize(
    client: httpx.AsyncClient, rec: Recorder, rng: random.Random, emails: list[dict[str, Any]]
) -> float | None:
    """One summary read to its end. Returns the seconds to back off after a 429, else None."""
    stats = rec.endpoints[SSE_ENDPOINT]
    started = time.perf_counter()
    first: float | None = None
    tokens, done, error = 0, None, None
    async with client.stream(
        "POST", "/v1/summarize", json=summary_body(rng, emails), headers={"Accept": "text/event-stream"}
    ) as response:
        if response.status_code == 429:
            await response.aread()
            stats.busy += 1
            return retry_after(response)
        if response.status_code != 200:
            await response.aread()
            stats.errors[f"http_{response.status_code}"] += 1
            return None
        async for event, data in iter_sse(response):
            if event == "token":
                tokens += 1
                first = first or time.perf_counter()
            elif event == "done":
                done = json.loads(data)
            elif event == "error":
                error = f"error_event:{json.loads(data).get('code')}"
    finished = time.perf_counter()
    if error is None and done is None:
        error = "no_done_event"
    elif error is None and done["usage"]["completionTokens"] != tokens:
        error = "token_count_mismatch"
    if error is not None:
        stats.errors[error] += 1
        return None
    stats.ok += 1
    stats.latencies_ms.append((finished - started) * 1000)
    if first is not None:
        stats.ttft_ms.append((first - started) * 1000)
    rec.run_ids.append(done["runId"])
    return None


async def json_request(
    client: httpx.AsyncClient,
    stats: EndpointStats,
    method: str,
    path: str,
    check: Callable[[Any], bool],
    body: Any = None,
) -> float | None:
    started = time.perf_counter()
    response = await client.request(method, path, json=body)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code == 429:
        stats.busy += 1
        return retry_after(response)
    if not 200 <= response.status_code < 300:
        stats.errors[f"http_{response.status_code}"] += 1
        return None
    try:
        good = check(response.json())
    except ValueError:
        good = False
    if not good:
        stats.errors["unexpected_body"] += 1
        return None
    stats.ok += 1
    stats.latencies_ms.append(elapsed)
    return None


def make_ops(emails: list[dict[str, Any]]) -> dict[str, Op]:
    async def runs(client: httpx.AsyncClient, rec: Recorder, rng: random.Random) -> float | None:
        if not rec.run_ids:  # nothing finished yet: fall back to the cheapest JSON endpoint
            return await healthz(client, rec, rng)
        run_id = rng.choice(rec.run_ids)
        return await json_request(
            client,
            rec.endpoints["runs"],
            "GET",
            f"/v1/runs/{run_id}",
            lambda b: b.get("id") == run_id and "status" in b,
        )

    async def healthz(client: httpx.AsyncClient, rec: Recorder, rng: random.Random) -> float | None:
        return await json_request(
            client, rec.endpoints["healthz"], "GET", "/healthz", lambda b: b.get("status") == "ok"
        )

    async def models(client: httpx.AsyncClient, rec: Recorder, rng: random.Random) -> float | None:
        return await json_request(
            client,
            rec.endpoints["models"],
            "GET",
            "/v1/models",
            lambda b: b.get("state") == "ready" and "waiting" in b,
        )

    async def prepare(client: httpx.AsyncClient, rec: Recorder, rng: random.Random) -> float | None:
        return await json_request(
            client,
            rec.endpoints["prepare"],
            "POST",
            "/v1/prepare",
            lambda b: isinstance(b.get("prepared"), bool),
            body=summary_body(rng, emails),
        )

    async def sse(client: httpx.AsyncClient, rec: Recorder, rng: random.Random) -> float | None:
        return await summarize(client, rec, rng, emails)

    return {"summarize": sse, "runs": runs, "healthz": healthz, "models": models, "prepare": prepare}


# -- the clients ---------------------------------------------------------------------------------------------


@dataclass
class LoadConfig:
    base_url: str
    clients: int
    duration: float
    vanishing: int
    think_ms: float
    max_backoff: float
    timeout: float
    seed: int


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client: httpx builds one per client otherwise (loading the CA bundle,
    tens of ms each), which would block this event loop for seconds while 250 clients start. Unused on
    plain HTTP, but httpx makes it anyway."""
    return ssl.create_default_context()


# The server's per-user token, read from its app data folder once it started (ServerProcess): every client
# presents it, as the task pane does.
TOKEN: dict[str, str] = {}


def new_client(base_url: str, timeout: float = 10.0) -> httpx.AsyncClient:
    """A client with one connection, like one task pane. `Host` is the loopback name the server requires;
    `Authorization` carries the server's token."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Host": base_url.split("://", 1)[1], **TOKEN},
        timeout=httpx.Timeout(timeout, connect=10.0),
        verify=_tls_context(),
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


async def pause(seconds: float, deadline: float) -> None:
    await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))


def classify_exception(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol_error"
    if isinstance(exc, httpx.ReadError):
        return "read_error"
    return f"exception:{type(exc).__name__}"


async def client_loop(cfg: LoadConfig, rec: Recorder, ops: dict[str, Op], seed: int, deadline: float) -> None:
    rng = random.Random(seed)
    names, weights = zip(*MIX, strict=True)
    async with new_client(cfg.base_url, cfg.timeout) as client:
        await pause(rng.uniform(0, 0.5), deadline)  # a staggered start, not 200 requests in one instant
        while time.monotonic() < deadline:
            name = rng.choices(names, weights)[0]
            try:
                backoff = await ops[name](client, rec, rng)
            except Exception as exc:
                rec.endpoints[name].errors[classify_exception(exc)] += 1
                backoff = None
            if backoff is not None:
                await pause(min(backoff, cfg.max_backoff) + rng.uniform(0, 0.25), deadline)
            else:
                await pause(rng.uniform(0, 2 * cfg.think_ms / 1000), deadline)


async def vanishing_client(
    cfg: LoadConfig, rec: Recorder, emails: list[dict[str, Any]], seed: int, start_at: float, deadline: float
) -> None:
    """Start a summary, read `planned_events` events, then drop the connection. Retries after 429 until
    admitted (or the run ends), since a client that never got a stream cannot vanish from one."""
    rng = random.Random(seed)
    v = Vanished(planned_events=rng.randint(0, 5))
    rec.vanished.append(v)
    await pause(start_at - time.monotonic(), deadline)
    while time.monotonic() < deadline and not v.admitted:
        backoff = None
        try:
            async with (
                new_client(cfg.base_url, cfg.timeout) as client,
                client.stream(
                    "POST",
                    "/v1/summarize",
                    json=summary_body(rng, emails),
                    headers={"Accept": "text/event-stream"},
                ) as response,
            ):
                if response.status_code == 429:
                    await response.aread()
                    v.busy += 1
                    backoff = retry_after(response)
                elif response.status_code != 200:
                    v.error = f"http_{response.status_code}"
                    return
                else:
                    v.admitted = True
                    await read_then_drop(response, v)  # leaving the block closes the connection
        except Exception as exc:
            v.error = classify_exception(exc)
            return
        if backoff is not None:
            await pause(min(backoff, cfg.max_backoff) + rng.uniform(0, 0.25), deadline)


async def read_then_drop(response: httpx.Response, v: Vanished) -> None:
    """Read `v.planned_events` events (none: leave right after the headers, maybe still in line)."""
    if v.planned_events == 0:
        return
    async for event, data in iter_sse(response):
        v.events_read += 1
        if event == "meta":
            v.run_id = json.loads(data)["runId"]
        elif event == "token":
            v.tokens_read += 1
        if v.events_read >= v.planned_events or event in ("done", "error"):
            return


async def lag_monitor(samples: list[float], stop: asyncio.Event, every: float = 0.05) -> None:
    """How late this process's event loop wakes up: a busy client inflates every latency it measures."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(every)
        samples.append((time.perf_counter() - before - every) * 1000)


async def run_load(cfg: LoadConfig, emails: list[dict[str, Any]]) -> tuple[Recorder, float, list[float]]:
    rec = Recorder()
    ops = make_ops(emails)
    lag: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(lag_monitor(lag, stop))
    started = time.monotonic()
    deadline = started + cfg.duration
    rng = random.Random(cfg.seed)
    tasks = [
        asyncio.create_task(client_loop(cfg, rec, ops, cfg.seed * 100_003 + i, deadline))
        for i in range(cfg.clients)
    ]
    tasks += [
        asyncio.create_task(
            vanishing_client(
                cfg,
                rec,
                emails,
                cfg.seed * 200_003 + i,
                started + rng.uniform(*VANISH_START) * cfg.duration,
                deadline,
            )
        )
        for i in range(cfg.vanishing)
    ]
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    stop.set()
    await monitor
    return rec, elapsed, lag


# -- the server ---------------------------------------------------------------------------------------------


class ServerProcess:
    """bench/_load_server.py in a child process, its log in a file; stopped with SIGINT (graceful)."""

    def __init__(
        self, home: Path, log_path: Path, *, words: int, delay: float, max_queue: int | None
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        cmd = [
            sys.executable,
            str(SERVER_SCRIPT),
            "--home",
            str(home),
            "--words",
            str(words),
            "--delay",
            str(delay),
        ]
        if max_queue is not None:
            cmd += ["--max-queue", str(max_queue)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._log, env={**os.environ, "DESKPILOT_HOME": str(home)}
        )
        self.port = self._read_port(timeout=60)
        self.base_url = f"http://127.0.0.1:{self.port}"
        TOKEN["Authorization"] = f"Bearer {read_token(home / 'token')}"  # the app made it before listening

    def _read_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline().decode().strip()
                if line.startswith("PORT "):
                    return int(line.split()[1])
                if not line and self.proc.poll() is not None:
                    break
        self.stop()
        raise RuntimeError(f"the server did not start; {self.log_path}:\n{self.log_path.read_text()[-3000:]}")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log_path}")
            try:
                r = httpx.get(self.base_url + "/healthz", timeout=2)
                if r.status_code == 200 and r.json().get("model") == "ready":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready in {timeout} s; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def logged_errors(self) -> list[str]:
        """Lines of the server's log at ERROR or above, and tracebacks."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if _LOGGED_ERROR.search(line)]


_LOGGED_ERROR = re.compile(r"^(ERROR|CRITICAL)\b|\b(ERROR|CRITICAL)\b -|\s(ERROR|CRITICAL)\s|^Traceback")


async def bench_state(base_url: str, *, gc: bool = False) -> dict[str, Any]:
    async with new_client(base_url) as client:
        r = await client.get("/bench/state", params={"gc": "true"} if gc else None)
        r.raise_for_status()
        return r.json()


def drained(state: dict[str, Any]) -> bool:
    return (
        state["gate_waiting"] == 0
        and not state["gate_busy"]
        and state["backend_active"] == 0
        and state["open_runs"] == 0
    )


async def wait_for_drain(base_url: str, timeout: float) -> tuple[bool, float, dict[str, Any]]:
    """Poll until the gate is empty and idle, no generation runs and no lineage run is open."""
    started = time.monotonic()
    while True:
        state = await bench_state(base_url)
        if drained(state) or time.monotonic() - started > timeout:
            return drained(state), time.monotonic() - started, state
        await asyncio.sleep(0.1)


async def settled_state(
    base_url: str, baseline: dict[str, Any] | None, timeout: float = 10
) -> dict[str, Any]:
    """The state after a full GC, polled (up to `timeout`) until tasks and fds are back at the baseline:
    the server tears closed connections down a moment after the clients have gone."""
    deadline = time.monotonic() + timeout
    while True:
        state = await bench_state(base_url, gc=True)
        if (
            baseline is None
            or time.monotonic() > deadline
            or (
                state["asyncio_tasks"] <= baseline["asyncio_tasks"]
                and (state["open_fds"] or 0) <= (baseline["open_fds"] or 0)
            )
        ):
            return state
        await asyncio.sleep(0.5)


async def run_statuses(base_url: str, run_ids: list[str]) -> Counter[str]:
    """What lineage says of these runs now: ok, cancelled, error, or still `running` (a leak)."""
    statuses: Counter[str] = Counter()
    async with new_client(base_url) as client:
        for run_id in run_ids:
            r = await client.get(f"/v1/runs/{run_id}")
            statuses[r.json().get("status", "?") if r.status_code == 200 else f"http_{r.status_code}"] += 1
    return statuses


# -- figures -------------------------------------------------------------------------------------------------

LABELS = {
    "summarize": "POST /v1/summarize SSE",
    "runs": "GET /v1/runs/{id}",
    "healthz": "GET /healthz",
    "models": "GET /v1/models",
    "prepare": "POST /v1/prepare",
}


def endpoint_figures(stats: EndpointStats, elapsed: float) -> dict[str, Any]:
    lat = stats.latencies_ms
    return {
        "requests": stats.requests,
        "ok": stats.ok,
        "busy_429": stats.busy,
        "errors": sum(stats.errors.values()),
        "error_kinds": dict(stats.errors),
        "ok_per_s": round(stats.ok / elapsed, 1),
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat, default=None),
        "ttft_p50_ms": percentile(stats.ttft_ms, 50),
        "ttft_p99_ms": percentile(stats.ttft_ms, 99),
    }


def total_figures(rec: Recorder, figures: dict[str, dict[str, Any]], elapsed: float) -> dict[str, Any]:
    every = [x for stats in rec.endpoints.values() for x in stats.latencies_ms]
    ok = sum(f["ok"] for f in figures.values())
    return {
        "requests": sum(f["requests"] for f in figures.values()),
        "ok": ok,
        "busy_429": sum(f["busy_429"] for f in figures.values()),
        "errors": sum(f["errors"] for f in figures.values()),
        "ok_per_s": round(ok / elapsed, 1),
        "p50_ms": percentile(every, 50),
        "p99_ms": percentile(every, 99),
        "max_ms": max(every, default=None),
    }


def vanishing_figures(
    rec: Recorder, statuses: Counter[str], before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    gone = [v for v in rec.vanished if v.admitted]

    def left_at(v: Vanished) -> str:
        if v.events_read == 0:
            return "headers"
        return "meta" if v.tokens_read == 0 else f"{v.tokens_read} token(s)"

    return {
        "planned": len(rec.vanished),
        "vanished": len(gone),
        "never_admitted": sum(1 for v in rec.vanished if not v.admitted and v.error is None),
        "errors": dict(Counter(v.error for v in rec.vanished if v.error)),
        "busy_429_before_admission": sum(v.busy for v in rec.vanished),
        "left_after": dict(sorted(Counter(left_at(v) for v in gone).items())),
        "run_statuses": dict(statuses),
        "generations_cut_short": after["backend_cut_short"] - before["backend_cut_short"],
    }


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def print_table(figures: dict[str, dict[str, Any]], totals: dict[str, Any]) -> None:
    head = (
        f"{'endpoint':<24}{'requests':>9}{'ok':>8}{'429':>7}{'errors':>7}{'ok/s':>8}"
        f"{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"
    )
    print(head)
    print("-" * len(head))
    for name, f in [*figures.items(), ("total", totals)]:
        if name == "total":
            print("-" * len(head))
        print(
            f"{LABELS.get(name, name):<24}{f['requests']:>9,}{f['ok']:>8,}{f['busy_429']:>7,}"
            f"{f['errors']:>7,}{f['ok_per_s']:>8,.1f}{ms(f['p50_ms']):>10}{ms(f['p99_ms']):>10}{ms(f['max_ms']):>10}"
        )
    sse = figures[SSE_ENDPOINT]
    print(f"{'  summarize, 1st token':<63}{ms(sse['ttft_p50_ms']):>10}{ms(sse['ttft_p99_ms']):>10}")
    for name, f in figures.items():
        if f["error_kinds"]:
            print(f"  errors of {LABELS[name]}: {f['error_kinds']}")


def status_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    old = before.get("runs_by_status") or {}
    new = after.get("runs_by_status") or {}
    return {status: n - old.get(status, 0) for status, n in new.items() if n != old.get(status, 0)}


# -- main ---------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Load test of the Deskpilot server (see the module docstring).")
    p.add_argument("--quick", action="store_true", help="smoke run: 40 clients, 10 vanishing, 10 s")
    p.add_argument("--clients", type=int, help="concurrent client loops (default 200; --quick 40)")
    p.add_argument("--duration", type=float, help="seconds of load (default 60; --quick 10)")
    p.add_argument("--vanishing", type=int, help="clients that drop mid-stream (default 50; --quick 10)")
    p.add_argument("--think-ms", type=float, default=50, help="mean pause between a client's requests")
    p.add_argument("--max-backoff", type=float, default=5, help="cap on the Retry-After a client waits (s)")
    p.add_argument("--timeout", type=float, default=30, help="per-request timeout (s); a timeout is an error")
    p.add_argument("--words", type=int, default=40, help="tokens per scripted generation")
    p.add_argument("--delay-ms", type=float, default=2, help="ms between scripted tokens")
    p.add_argument("--max-queue", type=int, help="the server's max_queue (default: its setting, 4)")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up load before the baseline")
    p.add_argument("--drain-timeout", type=float, default=10, help="seconds the gate has to drain afterwards")
    p.add_argument("--max-rss-growth-mb", type=float, default=50, help="allowed RSS growth over the baseline")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = p.parse_args()
    args.clients = args.clients or (40 if args.quick else 200)
    args.duration = args.duration or (10.0 if args.quick else 60.0)
    args.vanishing = args.vanishing if args.vanishing is not None else (10 if args.quick else 50)
    return args


def load_emails() -> list[dict[str, Any]]:
    try:
        raw = json.loads((HERE / "emails.json").read_text())
    except (OSError, ValueError):
        return []
    keep = ("from", "to", "cc", "subject", "date", "body")
    return [{k: v for k, v in e.items() if k in keep} for e in raw]


@dataclass
class Outcome:
    """Everything measured by one run; `report` turns it into the table, the checks and the JSON."""

    rec: Recorder
    elapsed: float
    lag_ms: list[float]
    baseline: dict[str, Any]
    after: dict[str, Any]
    drained: bool
    drain_s: float
    drain_state: dict[str, Any]
    vanished_statuses: Counter[str]
    cpu_server_s: float
    cpu_client_s: float
    server_exit: int | None = None
    server_log_errors: list[str] = field(default_factory=list)


def measure(args: argparse.Namespace, server: ServerProcess, emails: list[dict[str, Any]]) -> Outcome:
    """Warm up, take the baseline, load, let it drain, take the state again."""

    def config(clients: int, duration: float, vanishing: int) -> LoadConfig:
        return LoadConfig(
            server.base_url,
            clients,
            duration,
            vanishing,
            args.think_ms,
            args.max_backoff,
            args.timeout,
            args.seed,
        )

    warm = max(1, args.clients // 10)
    asyncio.run(run_load(config(warm, args.warmup, max(1, args.vanishing // 10)), emails))
    warm_drained, _, _ = asyncio.run(wait_for_drain(server.base_url, args.drain_timeout))
    baseline = asyncio.run(settled_state(server.base_url, None))
    print(
        f"warm-up: {warm} clients for {args.warmup:g} s, drained {warm_drained}; baseline: RSS "
        f"{baseline['rss_bytes'] / 2**20:.1f} MB, {baseline['asyncio_tasks']} asyncio tasks, "
        f"{baseline['open_fds']} fds, {baseline['threads']} threads",
        flush=True,
    )

    cpu_server = server.cpu_seconds()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_client = usage.ru_utime + usage.ru_stime
    rec, elapsed, lag = asyncio.run(run_load(config(args.clients, args.duration, args.vanishing), emails))
    cpu_server = server.cpu_seconds() - cpu_server
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_client = usage.ru_utime + usage.ru_stime - cpu_client

    ok, drain_s, drain_state = asyncio.run(wait_for_drain(server.base_url, args.drain_timeout))
    after = asyncio.run(settled_state(server.base_url, baseline))
    statuses = asyncio.run(run_statuses(server.base_url, [v.run_id for v in rec.vanished if v.run_id]))
    return Outcome(
        rec, elapsed, lag, baseline, after, ok, drain_s, drain_state, statuses, cpu_server, cpu_client
    )


def report(args: argparse.Namespace, out: Outcome) -> bool:
    """Print the figures, write them as JSON, and say whether every check passed."""
    rec, elapsed, baseline, after = out.rec, out.elapsed, out.baseline, out.after
    figures = {name: endpoint_figures(stats, elapsed) for name, stats in rec.endpoints.items()}
    totals = total_figures(rec, figures, elapsed)
    vanish = vanishing_figures(rec, out.vanished_statuses, baseline, after)
    summaries = figures[SSE_ENDPOINT]["ok"]
    rss_growth_mb = (after["rss_bytes"] - baseline["rss_bytes"]) / 2**20
    memory = {
        "rss_baseline_mb": round(baseline["rss_bytes"] / 2**20, 1),
        "rss_after_mb": round(after["rss_bytes"] / 2**20, 1),
        "rss_growth_mb": round(rss_growth_mb, 1),
        "asyncio_tasks": [baseline["asyncio_tasks"], after["asyncio_tasks"]],
        "open_fds": [baseline["open_fds"], after["open_fds"]],
        "threads": [baseline["threads"], after["threads"]],
    }
    checks = {
        "queue_drained": out.drained,
        "no_run_left_open": out.drain_state["open_runs"] == 0,
        "vanished_runs_closed": out.vanished_statuses.get("running", 0) == 0,
        "no_errors_besides_429": totals["errors"] == 0 and not vanish["errors"],
        "server_log_clean": not out.server_log_errors,
        "server_stopped_cleanly": out.server_exit == 0,
        "tasks_back_to_baseline": after["asyncio_tasks"] <= baseline["asyncio_tasks"] + 5,
        "fds_back_to_baseline": (after["open_fds"] or 0) <= (baseline["open_fds"] or 0) + 5,
        f"rss_growth_under_{args.max_rss_growth_mb:g}_mb": rss_growth_mb <= args.max_rss_growth_mb,
    }
    lag = out.lag_ms
    cores = os.cpu_count() or 1

    print(
        f"\nload: {elapsed:.1f} s, {args.clients} clients + {args.vanishing} vanishing, server max_queue "
        f"{baseline['gate_max_waiting']}; latencies of successful requests\n"
    )
    print_table(figures, totals)
    busy_share = figures[SSE_ENDPOINT]["busy_429"] / max(1, figures[SSE_ENDPOINT]["requests"])
    print(
        f"\nthroughput: {totals['ok_per_s']:,.1f} ok requests/s; {summaries / elapsed:,.1f} summaries/s "
        f"({summaries * args.words / elapsed:,.0f} tokens/s); {busy_share:.0%} of summary requests got 429"
    )
    print(
        f"CPU during the load: server {out.cpu_server_s:.1f} s, load generator {out.cpu_client_s:.1f} s "
        f"(of {elapsed * cores:.0f} core-seconds on {cores} cores); load generator loop lag "
        f"p50 {ms(percentile(lag, 50))} ms, p99 {ms(percentile(lag, 99))} ms, "
        f"max {ms(max(lag, default=None))} ms"
    )
    print(
        f"vanishing clients: {vanish['vanished']} of {vanish['planned']} dropped a stream, after "
        f"{vanish['left_after']}; {vanish['busy_429_before_admission']} 429s before admission, "
        f"{vanish['never_admitted']} never admitted; their runs in lineage: {vanish['run_statuses']}; "
        f"generations cut short in the backend: {vanish['generations_cut_short']}"
    )
    state = out.drain_state
    print(
        f"after the load: {'drained' if out.drained else 'NOT drained'} in {out.drain_s:.1f} s on its own "
        f"(waiting {state['gate_waiting']}, busy {state['gate_busy']}, "
        f"generating {state['backend_active']}, "
        f"runs open {state['open_runs']}); after a full GC in the server: waiting {after['gate_waiting']}, "
        f"busy {after['gate_busy']}; lineage runs closed during the load: {status_delta(baseline, after)}"
    )
    print(
        f"memory: RSS {memory['rss_baseline_mb']} -> {memory['rss_after_mb']} MB "
        f"({rss_growth_mb:+.1f} MB); "
        f"asyncio tasks {baseline['asyncio_tasks']} -> {after['asyncio_tasks']}; "
        f"open fds {baseline['open_fds']} -> {after['open_fds']}; "
        f"threads {baseline['threads']} -> {after['threads']}"
    )
    print(f"server: exit status {out.server_exit}, {len(out.server_log_errors)} error line(s) in its log")
    for line in out.server_log_errors[:10]:
        print("  " + line)
    print("checks: " + ", ".join(f"{name} {'PASS' if good else 'FAIL'}" for name, good in checks.items()))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "cpus": cores,
                "load_average_before": args.load_average_before,
                "elapsed_s": round(elapsed, 2),
                "endpoints": figures,
                "totals": totals,
                "summaries_per_s": round(summaries / elapsed, 2),
                "cpu_seconds": {
                    "server": round(out.cpu_server_s, 1),
                    "load_generator": round(out.cpu_client_s, 1),
                },
                "load_generator_loop_lag_ms": {
                    "p50": percentile(lag, 50),
                    "p99": percentile(lag, 99),
                    "max": max(lag, default=None),
                },
                "vanishing": vanish,
                "vanished_clients": [asdict(v) for v in rec.vanished],
                "drain": {"drained": out.drained, "seconds": round(out.drain_s, 2), "state": state},
                "baseline_state": baseline,
                "after_state": after,
                "memory": memory,
                "server_exit_status": out.server_exit,
                "server_log_errors": out.server_log_errors[:50],
                "checks": checks,
            },
            indent=2,
        )
    )
    print(f"figures written to {args.out}")
    return all(checks.values())


def main() -> int:
    args = parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.load_average_before = round(os.getloadavg()[0], 2)  # another busy process skews every figure
    print(
        f"load test: {args.clients} clients + {args.vanishing} vanishing for {args.duration:g} s, think "
        f"{args.think_ms:g} ms, script {args.words} tokens x {args.delay_ms:g} ms; {os.cpu_count()} CPUs, "
        f"load average {args.load_average_before:.2f} before the start",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="deskpilot-load-") as home:
        server = ServerProcess(
            Path(home),
            RESULTS / "load_server.log",
            words=args.words,
            delay=args.delay_ms / 1000,
            max_queue=args.max_queue,
        )
        try:
            server.wait_ready()
            outcome = measure(args, server, load_emails())
        finally:
            exit_status = server.stop()
        outcome.server_exit = exit_status
        outcome.server_log_errors = server.logged_errors()
    return 0 if report(args, outcome) else 1


if __name__ == "__main__":
    sys.exit(main())

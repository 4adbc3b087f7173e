"""What the per-user token costs a request: the guard in front of every route (server/web/security.py).

1. Baseline: the guard's other wall alone, Host + Origin + Sec-Fetch-Site checks, on a request the pane
   sends (the check every request already paid before the token existed), per request.
2. With the token: the whole guard, the same request plus `Authorization: Bearer <token>`: the token
   file's stat, and a constant-time comparison.
3. Through the app: GET /v1/models, calling the ASGI app as uvicorn does (in one thread, no sockets),
   with the guard in front and without it, to show the overhead against a whole request.

Reports microseconds per request (median of repeats) and the overhead of the token (2 - 1); the goal is
under 0.1 ms. Usage: python bench/bench_token.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from litestar import Litestar

from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.core.token import TokenFile, ensure_token
from deskpilot.server.settings import load_settings
from deskpilot.server.web.security import Guard


def _scope(token: str | None, scheme: str = "https") -> dict[str, Any]:
    headers = [
        (b"host", b"localhost:8765"),
        (b"origin", f"{scheme}://localhost:8765".encode()),
        (b"sec-fetch-site", b"same-origin"),
        (b"content-type", b"application/json"),
        (b"accept", b"text/event-stream"),
        (b"user-agent", b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Outlook"),
    ]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {"type": "http", "method": "POST", "path": "/v1/summarize", "headers": headers}


def _per_call_us(fn: Any, arg: Any, n: int, repeats: int = 7) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn(arg)
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        token = ensure_token(home / "token")
        guard = Guard(scheme="https", port=8765, host="127.0.0.1", token=TokenFile(home / "token"))
        with_token = _scope(token)
        assert guard.refusal(with_token) is None, "the bench request must be let in"
        where_only = _per_call_us(
            lambda s: guard._where({k: [v] for k, v in s["headers"]}), _scope(None), args.requests
        )
        whole = _per_call_us(guard.refusal, with_token, args.requests)
        print(f"guard, Host/Origin checks only (baseline): {where_only:7.2f} us/request")
        print(f"guard with the token check:                  {whole:7.2f} us/request")
        overhead = whole - where_only
        print(f"token overhead: {overhead:.2f} us/request = {overhead / 1000:.4f} ms (goal < 0.1 ms)")

        settings = load_settings(home=home / "app", https=False)
        app = create_app(settings, backend=ScriptedBackend(["ok"]))
        n = max(200, args.requests // 20)
        timings = asyncio.run(_whole_requests(app, ensure_token(settings.token_path), n))
        base = timings["without it"]
        print(
            f"GET /v1/models through the ASGI app, in one thread ({n} requests x 5, interleaved): "
            f"{timings['with the guard']:.1f} us with the guard, {base:.1f} us without "
            f"(ratio {timings['with the guard'] / base:.3f})"
        )


async def _whole_requests(app: Litestar, token: str, n: int) -> dict[str, float]:
    """Median microseconds per GET /v1/models, calling the app as uvicorn does, with the guard and
    without it (the handler it wraps)."""
    scope = {
        **_scope(token, "http"),
        "method": "GET",
        "path": "/v1/models",
        "raw_path": b"/v1/models",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "http_version": "1.1",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8765),
        "state": {},
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    guarded = app.asgi_handler
    samples: dict[str, list[float]] = {"with the guard": [], "without it": []}
    for _ in range(5):  # interleaved, so drift on a shared machine hits both alike
        for name, handler in (("without it", inspect.unwrap(guarded)), ("with the guard", guarded)):
            app.asgi_handler = handler
            start = time.perf_counter()
            for _ in range(n):
                await app(dict(scope), receive, send)  # type: ignore[arg-type]
            samples[name].append((time.perf_counter() - start) / n * 1e6)
    app.asgi_handler = guarded
    assert set(statuses) == {200}, f"the bench requests must succeed: {set(statuses)}"
    return {name: statistics.median(values) for name, values in samples.items()}


if __name__ == "__main__":
    main()

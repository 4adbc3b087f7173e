"""A real OpenAI-compatible server for tests, and a fault proxy in front of it.

`llama_server()` runs llama-cpp-python's own server (`python -m llama_cpp.server`, the `server` extra) on
127.0.0.1, serving the embedded model. `FaultProxy` is a threaded HTTP server on 127.0.0.1 that forwards
to it, unless a scripted fault is queued for the next request: answer 429 with Retry-After, answer 500,
drop the connection after some events of the stream, or stall (send nothing for a while).
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
from conftest import free_port

from deskpilot.inference.llama import requantized_embedded_model


@contextmanager
def llama_server(n_ctx: int = 2048) -> Iterator[str]:
    """The base URL (`http://127.0.0.1:PORT`) of a `llama_cpp.server` serving the embedded model."""
    model, folder = requantized_embedded_model(None, threads=2)
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2", "--verbose", "false"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                errors = process.stderr.read().decode()[-2000:] if process.stderr else ""
                raise RuntimeError(f"llama_cpp.server exited: {errors}")
            try:
                if httpx.get(f"{base}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start in 60 s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
        if folder is not None:
            folder.cleanup()


@dataclass
class Fault:
    """What the proxy does to one request: `status` (429, 500) answered at once, with `retry_after`;
    `drop_after` events forwarded and then the connection closed; `stall` seconds of silence after
    `stall_after` events (0: before the answer's headers); `extra` fields changed in the forwarded body."""

    status: int | None = None
    retry_after: str | None = None
    drop_after: int | None = None
    stall: float = 0.0
    stall_after: int = 0
    extra: dict[str, Any] | None = None  # merged into the forwarded body
    # Answer without the upstream: stream the last user message back in pieces of `echo` characters.
    echo: int | None = None


class _ProxyServer(http.server.ThreadingHTTPServer):
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a stalled request that forwards after its client (or the upstream) has gone is expected."""


class _Handler(http.server.BaseHTTPRequestHandler):
    """One request to the proxy: the fault it is due, or forwarded upstream."""

    server: _ProxyServer

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        proxy = self.server.proxy
        body = msgspec.json.decode(self.rfile.read(int(self.headers["Content-Length"])))
        proxy.bodies.append(body)
        proxy.headers.append(dict(self.headers.items()))
        fault = proxy.faults.pop(0) if proxy.faults else (proxy.sticky or Fault())
        if fault.status is not None:
            payload = b'{"error": {"message": "injected fault"}}'
            self.send_response(fault.status)
            if fault.retry_after is not None:
                self.send_header("Retry-After", fault.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if fault.stall and fault.stall_after == 0:
            time.sleep(fault.stall)
        if fault.echo is not None:
            self._echo(body, fault.echo)
            return
        self._forward({**body, **(fault.extra or {})}, fault)

    def _echo(self, body: dict[str, Any], size: int) -> None:
        text = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        for piece in pieces:
            chunk = {"model": "echo", "choices": [{"index": 0, "delta": {"content": piece}}]}
            self.wfile.write(b"data: " + msgspec.json.encode(chunk) + b"\n\n")
        usage = {"prompt_tokens": len(text) // 4, "completion_tokens": len(pieces)}
        last = {"model": "echo", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(b"data: " + msgspec.json.encode({**last, "usage": usage}) + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _forward(self, body: dict[str, Any], fault: Fault) -> None:
        with (
            httpx.Client(timeout=60) as client,
            client.stream("POST", f"{self.server.proxy.upstream}{self.path}", json=body) as answer,
        ):
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", "text/plain"))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            events = 0
            for line in answer.iter_lines():
                if fault.drop_after is not None and events >= fault.drop_after:
                    return  # the connection closes without the rest or [DONE]
                if fault.stall and fault.stall_after and events == fault.stall_after:
                    time.sleep(fault.stall)
                self.wfile.write(line.encode() + b"\n")
                self.wfile.flush()
                if line.startswith("data:"):
                    events += 1


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.bodies: list[dict[str, Any]] = []  # every request body received, in order
        self.headers: list[dict[str, str]] = []  # and its headers
        self.sticky: Fault | None = None  # applied to every request once `faults` is empty
        self._server = _ProxyServer(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

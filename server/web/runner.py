"""Run the app under uvicorn: loopback only, HTTPS by default, limits on what a client may send, and a
shutdown that does not hang.

uvicorn's graceful shutdown waits for open responses, and an SSE stream never ends by itself. Our server
sets the app's `stopping` event the moment shutdown begins, so every stream sends a final `error` event
(code `shutdown`) and closes; `timeout_graceful_shutdown` is the backstop for anything else.

Limits on a request's head. uvicorn's default HTTP parser (httptools) has none: it buffers a header of any
size, takes any number of headers, and waits forever for the rest of a request whose headers trickle in
(slowloris); uvicorn's `timeout_keep_alive` only starts once a response is complete, so a connection that
never sends anything stays open too. h11's `max_incomplete_event_size` bounds the size but not the time or
the count. `LimitedHttpProtocol` is uvicorn's httptools protocol with the missing limits:
- the request line and headers: at most `max_header_bytes` bytes and `max_headers` headers, else 431;
- the whole head within `header_timeout_seconds` of its first byte, else 408 and the connection closes;
- a connection with no request in flight (new, or between requests) closes after `idle_timeout_seconds`.
Its refusals, and the 400 for a request that does not parse, use the API's error body (`ErrorBody`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import httptools
import msgspec
import uvicorn
from litestar import Litestar
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from deskpilot.server.core.wire import ErrorBody
from deskpilot.server.settings import SERVER_PID_ENV, Settings, SettingsError
from deskpilot.server.web.tls import ensure_certificate

__all__ = ["HeadLimits", "LimitedHttpProtocol", "check_loopback", "serve", "uvicorn_config", "worker_process"]

log = logging.getLogger("deskpilot.server")


def check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SettingsError(
            f"host {host!r} is not a loopback address; Deskpilot listens on this computer only"
        )


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self._stopping = stopping

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stopping.set()  # streams end themselves before uvicorn starts waiting for them
        await super().shutdown(sockets)


class HeadLimits(msgspec.Struct, frozen=True):
    max_bytes: int
    max_headers: int
    header_timeout: float
    idle_timeout: float


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on the request head (see the module docstring); a server
    uses a subclass with its `limits` set (`uvicorn_config`)."""

    limits: ClassVar[HeadLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.idle_timeout  # type: ignore[assignment]  # a float works
        self._in_head = False
        self._head_bytes = 0  # received since the head began (an upper bound while it is incomplete)
        self._head_exact = 0  # the request line and the headers parsed so far
        self._head_count = 0
        self._head_timer: asyncio.TimerHandle | None = None

    # uvicorn's own signature, narrower than asyncio.Protocol's (BaseTransport); the ignore is uvicorn's too.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer only after a response: a connection that never sends a
        # request would stay open. Arm it now; the first byte received cancels it.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Refused):
                raise
            self._refuse(exc.__context__)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("the request is not valid HTTP/1.1")
            return
        if self._in_head:
            # Headers still incomplete: all of this chunk after the head's first byte is head.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_bytes:
                self._refuse(self._too_large())

    def send_400_response(self, msg: str) -> None:
        self._refuse(_Refused(400, "invalid_request", msg))

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = self._head_exact = self._head_count = 0
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        if self._head_count > self.limits.max_headers:
            raise self._too_large()
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    # Limits

    def _count(self, size: int) -> None:
        self._head_exact += size
        if self._head_exact > self.limits.max_bytes:
            raise self._too_large()

    def _too_large(self) -> _Refused:
        return _Refused(
            431,
            "headers_too_large",
            f"request headers too large: at most {self.limits.max_bytes:,} bytes "
            f"in {self.limits.max_headers} headers",
        )

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head:
            seconds = f"{self.limits.header_timeout:g}"
            self._refuse(_Refused(408, "request_timeout", f"the request headers took over {seconds} s"))

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, refusal: _Refused) -> None:
        """Answer with the error body and close the connection (its state is unknown from here on)."""
        self._in_head = False
        self._stop_head_timer()
        if self.transport.is_closing():
            return
        body = msgspec.json.encode(ErrorBody(code=refusal.code, message=refusal.message))
        head = [b"HTTP/1.1 %d %s\r\n" % (refusal.status, _REASONS[refusal.status])]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def uvicorn_config(app: Litestar, settings: Settings) -> uvicorn.Config:
    """The one uvicorn configuration `serve` runs (and tests run on 127.0.0.1)."""
    certfile: str | None = None
    keyfile: str | None = None
    if settings.https:
        cert, key = ensure_certificate(settings.tls_dir)
        certfile, keyfile = str(cert), str(key)
    limits = HeadLimits(
        max_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        header_timeout=settings.header_timeout_seconds,
        idle_timeout=settings.idle_timeout_seconds,
    )
    protocol = type("LimitedHttp", (LimitedHttpProtocol,), {"limits": limits})
    return uvicorn.Config(
        app,
        host=settings.host.strip("[]"),
        port=settings.port,
        http=protocol,
        timeout_graceful_shutdown=int(max(1, settings.shutdown_grace_seconds)),
        log_level="info",
        server_header=False,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )


def serve(app: Litestar, settings: Settings) -> None:
    check_loopback(settings.host)
    _DrainingServer(uvicorn_config(app, settings), app.state.stopping).run()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGINT (a graceful stop) when the server dies, even by kill -9, so a
    crashed server never leaves a consumer behind; the next server's worker recovers its work."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes] | None]:
    """`deskpilot worker` as a child of the server, stopped gracefully with it (SIGINT: running tasks
    finish), unless the `worker` setting is off."""
    if not settings.worker:
        yield None
        return
    env = {**os.environ, "DESKPILOT_HOME": str(settings.home), SERVER_PID_ENV: str(os.getpid())}
    child = subprocess.Popen(
        [sys.executable, "-m", "deskpilot.server.cli", "worker"],
        env=env,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    log.info("worker started (pid %d)", child.pid)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler that was
    # there before it: by default that ends the process at once, before this block could stop the
    # worker, and the worker would outlive the server. Ending with SystemExit instead lets it run.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        yield child
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=max(5.0, settings.shutdown_grace_seconds))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

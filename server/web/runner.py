"""Run the app under uvicorn: loopback only, HTTPS by default, and a shutdown that does not hang.

uvicorn's graceful shutdown waits for open responses, and an SSE stream never ends by itself. Our server
sets the app's `stopping` event the moment shutdown begins, so every stream sends a final `error` event
(code `shutdown`) and closes; `timeout_graceful_shutdown` is the backstop for anything else.
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

import uvicorn
from litestar import Litestar

from deskpilot.server.settings import Settings, SettingsError
from deskpilot.server.web.tls import ensure_certificate

__all__ = ["check_loopback", "serve", "worker_process"]

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


def serve(app: Litestar, settings: Settings) -> None:
    check_loopback(settings.host)
    certfile: str | None = None
    keyfile: str | None = None
    if settings.https:
        cert, key = ensure_certificate(settings.tls_dir)
        certfile, keyfile = str(cert), str(key)
    config = uvicorn.Config(
        app,
        host=settings.host.strip("[]"),
        port=settings.port,
        timeout_graceful_shutdown=int(max(1, settings.shutdown_grace_seconds)),
        log_level="info",
        server_header=False,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    _DrainingServer(config, app.state.stopping).run()


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
    env = {**os.environ, "DESKPILOT_HOME": str(settings.home)}
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

"""An app under a real uvicorn on 127.0.0.1, served from a daemon thread of the test process: what the
tests that need a real socket (disconnects, header limits, the dashboard in Chromium, a Prometheus-style
scrape over HTTPS) share."""

from __future__ import annotations

import threading
import time
from typing import Any, Self

import uvicorn

__all__ = ["UvicornThread", "plain_config"]


def plain_config(app: Any, port: int) -> uvicorn.Config:
    """Plain HTTP on 127.0.0.1:`port`, lifespan on, quiet (the server itself uses `uvicorn_config`)."""
    return uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


class UvicornThread:
    def __init__(self, config: uvicorn.Config) -> None:
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Self:
        """Serve, and return once the socket accepts connections (at most 20 s)."""
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

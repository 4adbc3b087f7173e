"""Shared fixtures: every test gets its own app data folder; real servers run on 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from deskpilot.server.core.token import read_token

REPO = Path(__file__).resolve().parents[1]
# The base URL of in-process test clients (Litestar's TestClient); the Host checks accept it.
BASE = "http://127.0.0.1:8765"


def bearer(token: str | None) -> dict[str, str]:
    """The header every client but /healthz sends: the per-user token (server/core/token.py)."""
    assert token, "no token: the app creates <home>/token when it is built, the server when it starts"
    return {"Authorization": f"Bearer {token}"}


def app_client(app: Litestar, **kwargs: Any) -> TestClient[Litestar]:
    """Litestar's TestClient on `BASE`, presenting the app's own token as the pane and the CLI do."""
    client: TestClient[Litestar] = TestClient(app, base_url=BASE, **kwargs)
    client.headers.update(bearer(read_token(app.state["services"].settings.token_path)))
    return client


TIERS = ("unit", "integration", "process", "model", "e2e", "gpu")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test belongs to a tier (pyproject's markers), so a tier selection never misses one."""
    untiered = [item.nodeid for item in items if not any(item.get_closest_marker(t) for t in TIERS)]
    if untiered:
        tiers = ", ".join(TIERS)
        raise pytest.UsageError(f"tests without a tier marker ({tiers}): {', '.join(untiered[:10])}")


@pytest.fixture(autouse=True)
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the app data folder at a temporary one, so no test touches the user's real data."""
    home = tmp_path / "home"
    monkeypatch.setenv("DESKPILOT_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("DESKPILOT_") and name != "DESKPILOT_HOME":
            monkeypatch.delenv(name)
    # The folders documents may be indexed from: the test's own, never the user's Documents folder.
    monkeypatch.setenv("DESKPILOT_INDEX_ROOTS", str(tmp_path))
    return home


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """`deskpilot` commands set umask 077 for their process; one invoked in-process (CliRunner) must not
    change what later tests create."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`deskpilot serve` (or any command that serves the app) in a child process on 127.0.0.1."""

    def __init__(
        self,
        home: Path,
        *,
        args: list[str] | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        https: bool = False,
    ) -> None:
        self.home = home
        self.port = free_port()
        self.https = https
        scheme = "https" if https else "http"
        self.base_url = f"{scheme}://127.0.0.1:{self.port}"
        cmd = command or [sys.executable, "-m", "deskpilot.server.cli", "serve"]
        cmd = [*cmd, "--port", str(self.port), *([] if https else ["--http"]), *(args or [])]
        self.log_path = home.parent / f"server-{self.port}.log"
        home.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # No consumer child unless a test asks for one (DESKPILOT_WORKER=true):
            # most server tests never queue an action.
            env={**os.environ, "DESKPILOT_HOME": str(home), "DESKPILOT_WORKER": "false", **(env or {})},
        )

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """Trust exactly the certificate the server generated (it exists once the server listens)."""
        return (
            ssl.create_default_context(cafile=str(self.home / "tls" / "localhost.pem"))
            if self.https
            else False
        )

    @property
    def token(self) -> str | None:
        """The token the server checks (it creates `<home>/token` on first start; rotation replaces it)."""
        return read_token(self.home / "token")

    @property
    def headers(self) -> dict[str, str]:
        """What a client sends to be let in: the token, read now (so a rotation shows)."""
        return bearer(self.token)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the server that presents its token, as the pane and the CLI do."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.base_url, verify=self.verify, timeout=60, headers=headers, **kwargs)

    def wait_healthy(self, timeout: float = 10.0) -> float:
        """Seconds from spawn until /healthz answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", verify=self.verify, timeout=1).status_code == 200:
                    return time.monotonic() - self.started_at
            except (httpx.TransportError, OSError):  # not listening yet, or no certificate yet
                pass
            time.sleep(0.02)
        raise TimeoutError(f"server not healthy after {timeout} s:\n{self.log()}")

    def wait_model(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = httpx.get(
                f"{self.base_url}/v1/models", headers=self.headers, verify=self.verify, timeout=5
            ).json()["state"]
            if state == "ready":
                return
            assert state == "loading", self.log()
            time.sleep(0.05)
        raise TimeoutError("model did not load")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> float:
        """Send `sig` and return the seconds the process took to exit."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        self._log.close()
        return time.monotonic() - t0

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def server_factory(app_home: Path) -> Iterator[type[ServerProcess]]:
    started: list[ServerProcess] = []

    class Factory(ServerProcess):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(kwargs.pop("home", app_home), **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield Factory
    for server in started:
        if server.proc.poll() is None:
            server.stop(signal.SIGKILL)


def parse_sse(text: str) -> list[tuple[str, dict | str]]:
    """(event, data) pairs, and ("comment", text) for comment lines."""
    out: list[tuple[str, dict | str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                out.append(("comment", line[1:].strip()))
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if event:
            out.append((event, msgspec.json.decode("\n".join(data))))
    return out

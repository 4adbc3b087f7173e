"""The last install step: does the server answer over HTTPS with the CA-issued certificate and load the model?

It checks a server that is already running on the configured port, or starts one with the exact command
autostart uses (the systemd unit's ExecStart= and Environment=), so a broken unit fails here and not at
the user's next logon.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from deskpilot.installer import _platforms as plat
from deskpilot.server.core.token import read_token

if TYPE_CHECKING:
    from deskpilot.installer._install import Layout

__all__ = ["answers", "health_check", "unit_command"]

log = logging.getLogger("deskpilot.installer")


def unit_command(unit_text: str) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) from a systemd unit's ExecStart= and Environment= lines."""
    argv: list[str] = []
    env: dict[str, str] = {}
    for line in unit_text.splitlines():
        if line.startswith("ExecStart="):
            argv = shlex.split(line.removeprefix("ExecStart="))
        elif line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value
    return argv, env


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _state(lay: Layout) -> dict[str, Any]:
    import json

    try:
        return dict(json.loads(lay.state_file.read_text()))
    except (OSError, ValueError):
        return {}


def health_check(lay: Layout, ca_cert: Path, timeout: float) -> bool:
    """The server answers over HTTPS with a certificate that verifies against the CA, and the model loads."""
    ctx = ssl.create_default_context(cafile=str(ca_cert))
    base = f"https://localhost:{lay.settings.port}"
    proc = None
    if answers(base, ctx):
        log.info("health    a server is already running on %s", base)
    elif _port_taken(lay.settings.port):
        log.error(
            "health    FAILED: something on port %s does not answer with the CA-issued certificate; "
            "if it is an older Deskpilot, restart it (`systemctl --user restart deskpilot`, or log off "
            "and on) so it loads the new certificate",
            lay.settings.port,
        )
        return False
    else:
        unit = Path(_state(lay).get("unit", "")) if _state(lay).get("unit") else None
        if unit and unit.suffix == ".service" and unit.is_file():
            argv, env = unit_command(unit.read_text())
        else:
            argv, env = plat.serve_command(), {"DESKPILOT_HOME": str(lay.home)}
        log.info("health    starting the server: %s", " ".join(argv))
        with (lay.home / "logs" / "health-check-server.log").open("wb") as server_log:
            proc = subprocess.Popen(
                argv, env={**os.environ, **env}, stdout=server_log, stderr=subprocess.STDOUT
            )
    try:
        return _wait_ready(base, ctx, timeout, proc, read_token(lay.settings.token_path))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def answers(base: str, ctx: ssl.SSLContext) -> bool:
    try:
        return httpx.get(f"{base}/healthz", verify=ctx, timeout=2).status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def _wait_ready(
    base: str, ctx: ssl.SSLContext, timeout: float, proc: subprocess.Popen[bytes] | None, token: str | None
) -> bool:
    deadline = time.monotonic() + timeout
    last = "no answer"
    headers = {"Authorization": f"Bearer {token}"}  # /v1/models, like every route but /healthz, needs it
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            log.error(
                "health    FAILED: the server exited with %s (see logs/health-check-server.log)",
                proc.returncode,
            )
            return False
        try:
            response = httpx.get(f"{base}/v1/models", headers=headers, verify=ctx, timeout=5)
            if response.status_code == 401:
                log.error(
                    "health    FAILED: the server on %s refuses this installation's access token; if it "
                    "is another user's or another data folder's Deskpilot, stop it",
                    base,
                )
                return False
            state = response.json().get("state")
        except (httpx.HTTPError, OSError, ValueError) as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # httpx wraps ssl errors in ConnectError
                log.error("health    FAILED: the certificate does not verify against the local CA: %s", exc)
                return False
            last = str(exc) or type(exc).__name__
            time.sleep(0.2)
            continue
        if state == "ready":
            log.info("health    ok: %s answers over HTTPS (verified against the local CA), model ready", base)
            return True
        if state == "failed":
            log.error("health    FAILED: the model did not load (GET /v1/models state failed)")
            return False
        last = f"model {state}"
        time.sleep(0.2)
    log.error("health    FAILED after %.0f s: %s", timeout, last)
    return False

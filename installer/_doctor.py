"""`deskpilot doctor`: check what the installer set up; say what is wrong and how to fix it."""

from __future__ import annotations

import os
import ssl
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from deskpilot.addin_manifest import HOSTS, manifest_filename, validate
from deskpilot.installer import _platforms as plat
from deskpilot.installer._ca import CA_CERT, CA_KEY, CA_NAME, ca_good, fingerprint, server_good
from deskpilot.installer._health import answers
from deskpilot.installer._install import ADMIN_ZIP, layout, read_state
from deskpilot.installer._nss import NssDb
from deskpilot.server.core.token import read_token
from deskpilot.server.web.tls import INSTALLED_CERT, INSTALLED_KEY

if TYPE_CHECKING:
    from deskpilot.server.settings import Settings

__all__ = ["doctor"]

REINSTALL = "run `deskpilot install` (it repairs without touching your data)"


def doctor(echo: Callable[[str], object] = print) -> int:
    """Print one line per check; return 1 if anything is wrong."""
    lay = layout()
    problems = 0

    def check(ok: bool, what: str, fix: str = REINSTALL) -> bool:
        nonlocal problems
        echo(f"{'ok  ' if ok else 'FAIL'}  {what}" + ("" if ok else f"\n      fix: {fix}"))
        problems += not ok
        return ok

    state = read_state(lay)
    if not check(bool(state), f"installed into {lay.home}", "run `deskpilot install`"):
        return 1
    ca_cert, ca_key = lay.ca_dir / CA_CERT, lay.ca_dir / CA_KEY
    if check(ca_good(ca_cert, ca_key), f"local CA {ca_cert}"):
        mode = stat.S_IMODE(ca_key.stat().st_mode)
        check(mode & 0o077 == 0, f"CA key is owner-only ({oct(mode)})", f"chmod 600 {ca_key}")
        tls = lay.settings.tls_dir
        check(
            server_good(tls / INSTALLED_CERT, tls / INSTALLED_KEY, ca_cert.read_bytes()),
            f"localhost certificate signed by the CA and not expiring ({tls / INSTALLED_CERT})",
        )
        if sys.platform.startswith("linux"):
            db = NssDb(lay.nssdb)
            if check(
                db.available(),
                "certutil (libnss3-tools) is installed",
                "install libnss3-tools (apt-get install libnss3-tools), then run `deskpilot install`",
            ):
                check(
                    db.fingerprint(CA_NAME) == fingerprint(ca_cert.read_bytes()),
                    f"{CA_NAME!r} is in the NSS database {lay.nssdb}",
                )
                check(
                    (db.trust(CA_NAME) or "").startswith("C"),
                    f"{CA_NAME!r} is trusted for TLS servers (C,,)",
                    f"certutil -M -d sql:{lay.nssdb} -n {CA_NAME!r} -t C,,",
                )
    unit = state.get("unit")
    if unit and sys.platform.startswith("linux"):
        from pathlib import Path

        want = plat.systemd_unit(lay.home, lay.settings.port)
        check(
            Path(unit).is_file() and Path(unit).read_text() == want,
            f"autostart unit {unit} is current (port {lay.settings.port})",
        )
    token_path = lay.settings.token_path
    token = read_token(token_path)
    if check(token is not None, f"access token {token_path}"):
        mode = stat.S_IMODE(token_path.stat().st_mode)
        check(mode & 0o077 == 0, f"access token is owner-only ({oct(mode)})", f"chmod 600 {token_path}")
    for host in HOSTS:
        path = lay.manifests_dir / manifest_filename(host)
        xml = path.read_bytes() if path.is_file() else b""
        good = bool(xml) and validate(xml) == [] and lay.settings.base_url.encode() in xml
        check(good, f"{host} manifest {path} is valid and points at {lay.settings.base_url}")
        # A manifest with an old token opens a pane that the server refuses.
        current = token is not None and f"token={token}".encode() in xml
        check(current, f"{host} manifest carries the current access token")
    check((lay.deploy_dir / ADMIN_ZIP).is_file(), f"admin center package {lay.deploy_dir / ADMIN_ZIP}")
    for policy in state.get("policies", []):
        check(
            os.path.isfile(policy),
            f"browser policy {plat.LNA_POLICY} in {policy}",
            "run `deskpilot install --allow-local-network-access` as root",
        )
    from deskpilot.server.models.checks import model_checks  # reads settings; loads no model

    for item in model_checks(lay.settings):
        check(item.ok, item.what, item.fix)
    if ca_cert.is_file():
        base = f"https://localhost:{lay.settings.port}"
        running = answers(base, ssl.create_default_context(cafile=str(ca_cert)))
        echo(
            f"info  server answers on {base} with the CA-issued certificate"
            if running
            else f"info  no server answers on {base} with the CA-issued certificate (start it with "
            "`deskpilot serve` or the autostart unit)"
        )
        echo(_worker_line(lay.settings))
    echo("everything looks right" if not problems else f"{problems} problem(s) found")
    return 1 if problems else 0


def _worker_line(settings: Settings) -> str:
    """Whether the action and workflow worker runs (it holds `worker.lock`), and what waits for it."""
    from deskpilot.server.worker import WorkerLock

    lock = WorkerLock(settings.home / "worker.lock")
    if lock.acquire(wait=False):
        lock.release()
        return (
            "info  no action worker is running: approved actions wait until `deskpilot serve` (or "
            "`deskpilot worker`) runs"
        )
    return f"info  the action worker runs (pid {lock.holder()})"

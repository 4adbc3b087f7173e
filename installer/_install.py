"""`deskpilot install` / `uninstall`: what is set up, where, and how it is undone.

Every step is "make it so": it compares what is there with what should be and writes only the difference,
so a second install is a no-op and an upgrade keeps the data. What the install created outside the app data
folder (the autostart unit, trust-store entries, policies, folders that did not exist) is recorded in
`install-state.json`, which is how `uninstall` removes exactly that and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deskpilot.addin_manifest import HOSTS, addin_id, manifest_filename, write_manifests
from deskpilot.installer import _platforms as plat
from deskpilot.installer._ca import CA_CERT, CA_NAME, ensure_ca, ensure_server_cert, fingerprint
from deskpilot.installer._health import health_check
from deskpilot.installer._nss import NssDb
from deskpilot.server.core.token import ensure_token, read_token
from deskpilot.server.settings import Settings, load_settings
from deskpilot.server.web.tls import INSTALLED_CERT, INSTALLED_KEY

__all__ = ["InstallOptions", "Layout", "install", "layout", "rewrite_manifests", "uninstall"]

log = logging.getLogger("deskpilot.installer")
STATE_FILE = "install-state.json"
ADMIN_ZIP = "deskpilot-addins.zip"
SYSTEM_CA = Path("/usr/local/share/ca-certificates/deskpilot-local-ca.crt")


@dataclass
class InstallOptions:
    machine: bool = False
    allow_local_network_access: bool = False
    health_check: bool = True
    health_timeout: float = 120.0
    # Written into <home>/config.toml (merged over what is there): port, model_path, threads, ...
    settings: dict[str, Any] = field(default_factory=dict)
    # Root of the machine-wide locations (/etc, /usr/local): "/" except in tests.
    system_root: Path = Path("/")


@dataclass
class Layout:
    settings: Settings
    user_home: Path

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def ca_dir(self) -> Path:
        return self.home / "ca"

    @property
    def manifests_dir(self) -> Path:
        return self.home / "manifests"

    @property
    def deploy_dir(self) -> Path:
        return self.home / "deploy"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "install.log"

    @property
    def state_file(self) -> Path:
        return self.home / STATE_FILE

    @property
    def nssdb(self) -> Path:
        return self.user_home / ".pki" / "nssdb"

    def unit_path(self, machine: bool) -> Path:
        if machine:
            return Path("/etc/systemd/user/deskpilot.service")
        config = os.environ.get("XDG_CONFIG_HOME") or str(self.user_home / ".config")
        return Path(config) / "systemd" / "user" / "deskpilot.service"


def layout() -> Layout:
    return Layout(load_settings(), Path(os.environ.get("HOME") or Path.home()))


class _Tracker:
    """Writes files only when their content differs; remembers folders it had to create."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.created_dirs: set[str] = set(state.get("created_dirs", []))
        self.changed = 0

    def mkdir(self, path: Path, mode: int | None = None) -> None:
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir()
            if mode is not None:
                os.chmod(d, mode)
            self.created_dirs.add(str(d))

    def write(self, path: Path, data: bytes | str, what: str, *, private: bool = False) -> bool:
        """`private`: owner-only (0600) from the moment it exists, for files that carry the user's token."""
        raw = data.encode() if isinstance(data, str) else data
        if path.is_file() and path.read_bytes() == raw:
            if private and path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
                self.changed += 1
                log.info("repaired  %s permissions (owner-only) (%s)", what, path)
                return True
            log.info("ok        %s (%s)", what, path)
            return False
        self.mkdir(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        if private:
            tmp.unlink(missing_ok=True)
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                out.write(raw)
        else:
            tmp.write_bytes(raw)
        os.replace(tmp, path)
        self.changed += 1
        log.info("written   %s (%s)", what, path)
        return True


def read_state(lay: Layout) -> dict[str, Any]:
    try:
        return dict(json.loads(lay.state_file.read_text()))
    except (OSError, ValueError):
        return {}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _write_config(lay: Layout, tracker: _Tracker, overrides: dict[str, Any]) -> None:
    if not overrides:
        return
    import msgspec

    path = lay.home / "config.toml"
    current: dict[str, Any] = msgspec.toml.decode(path.read_bytes()) if path.is_file() else {}
    merged = {**current, **overrides}
    if merged == current and path.is_file():
        log.info("ok        settings (%s)", path)
        return
    text = "# Deskpilot settings (see installer/README.md); `deskpilot install --config` merges into this.\n"
    text += "".join(f"{k} = {_toml_value(v)}\n" for k, v in sorted(merged.items()))
    tracker.write(path, text, "settings")


def systemd_running() -> bool:
    return shutil.which("systemctl") is not None and Path("/run/systemd/system").is_dir()


def _zip_bytes(files: list[Path]) -> bytes:
    """A reproducible zip (fixed timestamps, sorted), so reinstalling does not rewrite it."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(files):
            info = zipfile.ZipInfo(path.name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def install(opts: InstallOptions) -> int:
    """Install or repair; returns 0 when everything, health check included, is fine."""
    lay = layout()
    tracker = _Tracker(read_state(lay))
    tracker.mkdir(lay.home)
    _attach_file_log(lay)
    log.info("Deskpilot install (%s) into %s", "machine" if opts.machine else "per user", lay.home)
    _write_config(lay, tracker, opts.settings)
    lay.settings = load_settings()  # the port and model now come from the merged config
    settings = lay.settings
    # The per-user secret the CLI and the pane present (server/core/token.py); the manifests carry it.
    had_token = read_token(settings.token_path) is not None
    ensure_token(settings.token_path)
    verb = "ok       " if had_token else "created  "
    log.info("%s access token %s (owner-only)", verb, settings.token_path)
    tracker.changed += not had_token

    # 1. Certificates.
    tracker.mkdir(lay.ca_dir, 0o700)
    ca_cert, ca_key, created = ensure_ca(lay.ca_dir)
    log.info("%s local CA %s (key owner-only: %s)", "created  " if created else "ok       ", ca_cert, ca_key)
    if ca_key.stat().st_mode & 0o077:
        os.chmod(ca_key, 0o600)
        tracker.changed += 1
        log.info("repaired  CA key permissions (owner-only) %s", ca_key)
    tracker.mkdir(settings.tls_dir)
    cert, _key, created = ensure_server_cert(settings.tls_dir, ca_cert, ca_key)
    log.info("%s localhost certificate %s", "created  " if created else "ok       ", cert)
    tracker.changed += created

    # 2. Trust the CA where Office's web view looks.
    if sys.platform.startswith("linux"):
        _trust_linux(lay, tracker, ca_cert, opts)
    else:
        _write_platform_scripts(lay, tracker, ca_cert, opts)

    # 3. Autostart.
    if sys.platform.startswith("linux"):
        _autostart_linux(lay, tracker, opts)

    # 4. Add-in manifests and the admin center package (both carry this user's token).
    _write_manifests(lay, tracker)

    # 5. Browser policy for Local Network Access.
    if opts.allow_local_network_access:
        _lna_policies(lay, tracker, opts)

    _save_state(lay, tracker, opts)
    log.info("install %s", f"changed {tracker.changed} item(s)" if tracker.changed else "changed nothing")
    if not opts.health_check:
        log.info("health check skipped (--no-health-check)")
        return 0
    return 0 if health_check(lay, ca_cert, opts.health_timeout) else 1


def _attach_file_log(lay: Layout) -> None:
    lay.log_file.parent.mkdir(parents=True, exist_ok=True)
    for h in log.handlers:
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == lay.log_file:
            return
    handler = logging.FileHandler(lay.log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)


def _trust_linux(lay: Layout, tracker: _Tracker, ca_cert: Path, opts: InstallOptions) -> None:
    db = NssDb(lay.nssdb)
    if not db.available():
        log.warning(
            "certutil not found: install libnss3-tools, then run `deskpilot install` again "
            "(Chromium-based browsers will not trust the server until then)"
        )
    else:
        if not db.exists():
            tracker.mkdir(lay.nssdb, 0o700)
            db.create()
            tracker.state["nssdb_created"] = True
            log.info("created   NSS database %s", lay.nssdb)
        want = fingerprint(ca_cert.read_bytes())
        if db.fingerprint(CA_NAME) == want:
            log.info("ok        %r trusted in NSS database %s", CA_NAME, lay.nssdb)
        else:
            db.delete(CA_NAME)
            db.add(CA_NAME, ca_cert)
            tracker.changed += 1
            log.info("trusted   %r in NSS database %s (certutil -A -t C,,)", CA_NAME, lay.nssdb)
    if opts.machine:
        if os.geteuid() != 0:
            log.warning("--machine: not root, so the CA was not added to the system store")
            return
        target = opts.system_root / SYSTEM_CA.relative_to("/")
        if tracker.write(target, ca_cert.read_bytes(), "system CA store"):
            subprocess.run(["update-ca-certificates"], check=False, capture_output=True)
        tracker.state["system_ca"] = str(target)


def _autostart_linux(lay: Layout, tracker: _Tracker, opts: InstallOptions) -> None:
    unit = lay.unit_path(opts.machine)
    if opts.machine:
        unit = opts.system_root / unit.relative_to("/")
    tracker.write(unit, plat.systemd_unit(lay.home, lay.settings.port), "systemd --user unit")
    tracker.state["unit"] = str(unit)
    if systemd_running():
        cmd = ["systemctl", "--global" if opts.machine else "--user", "enable", "deskpilot.service"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        log.info("%s: %s", " ".join(cmd), (result.stdout + result.stderr).strip() or "ok")
    else:
        log.info(
            "systemd is not running on this machine: the unit is written but not enabled; on a "
            "systemd desktop run `systemctl --user enable --now deskpilot`"
        )


def _write_manifests(lay: Layout, tracker: _Tracker) -> list[Path]:
    """The per-user manifests and the admin center package: both carry the user's token, so both are
    owner-only, and both are rewritten when the token is rotated (`rewrite_manifests`)."""
    import tempfile

    token = ensure_token(lay.settings.token_path)
    with tempfile.TemporaryDirectory() as tmp:
        rendered = write_manifests(Path(tmp), lay.settings.base_url, token)
        for path in rendered:
            what = f"add-in manifest {path.name}"
            tracker.write(lay.manifests_dir / path.name, path.read_bytes(), what, private=True)
    manifests = [lay.manifests_dir / manifest_filename(h) for h in HOSTS]
    package = _zip_bytes(manifests)
    tracker.write(lay.deploy_dir / ADMIN_ZIP, package, "Microsoft 365 admin center package", private=True)
    return manifests


def rewrite_manifests() -> list[Path]:
    """After `deskpilot token rotate`: the installed manifests and package again, with the new token.
    Nothing is written where `deskpilot install` never wrote manifests."""
    lay = layout()
    if not lay.manifests_dir.is_dir():
        return []
    return _write_manifests(lay, _Tracker(read_state(lay)))


def _write_platform_scripts(lay: Layout, tracker: _Tracker, ca_cert: Path, opts: InstallOptions) -> None:
    """Windows and macOS: render the steps and run them (tested for content only; see installer/README.md)."""
    out = lay.deploy_dir
    if sys.platform == "win32":
        cer = out / "deskpilot-ca.cer"
        tracker.write(cer, ca_cert.read_bytes(), "CA certificate")
        manifests = {addin_id(h): str(lay.manifests_dir / manifest_filename(h)) for h in HOSTS}
        sideload = plat.utf16(plat.windows_sideload_reg(manifests))
        tracker.write(out / "sideload.reg", sideload, "sideload registry")
        task = plat.windows_task_xml(lay.settings.port, sys.executable, os.environ.get("USERNAME"))
        tracker.write(out / "deskpilot-task.xml", plat.utf16(task), "Scheduled Task")
        commands = [
            *plat.windows_trust_commands(str(cer), opts.machine),
            f'reg import "{out / "sideload.reg"}"',
            f'schtasks /Create /F /TN "Deskpilot\\Server" /XML "{out / "deskpilot-task.xml"}"',
        ]
    else:
        agent = lay.user_home / "Library" / "LaunchAgents" / "com.deskpilot.server.plist"
        tracker.write(agent, plat.macos_launch_agent(lay.home), "LaunchAgent")
        tracker.state["unit"] = str(agent)
        commands = [
            *plat.macos_trust_commands(str(ca_cert), opts.machine),
            f"launchctl bootstrap gui/{os.getuid()} {agent}",
        ]
    for command in commands:
        result = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
        log.info("ran       %s -> %s", command, result.returncode)


def _unregister_platform(lay: Layout, machine: bool) -> None:
    """Windows/macOS: undo the trust, sideload and autostart commands (content-tested only)."""
    if sys.platform == "win32":
        unreg = lay.deploy_dir / "unsideload.reg"
        unreg.parent.mkdir(parents=True, exist_ok=True)
        unreg.write_bytes(plat.utf16(plat.windows_unsideload_reg([addin_id(h) for h in HOSTS])))
        commands = [
            *plat.windows_untrust_commands(CA_NAME, machine),
            f'reg import "{unreg}"',
            'schtasks /Delete /F /TN "Deskpilot\\Server"',
        ]
    else:
        agent = lay.user_home / "Library" / "LaunchAgents" / "com.deskpilot.server.plist"
        commands = [
            f"launchctl bootout gui/{os.getuid()} {agent}",
            *plat.macos_untrust_commands(str(lay.ca_dir / CA_CERT), machine),
        ]
    for command in commands:
        result = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
        log.info("ran       %s -> %s", command, result.returncode)


def _lna_policies(lay: Layout, tracker: _Tracker, opts: InstallOptions) -> None:
    port = lay.settings.port
    if sys.platform.startswith("linux"):
        if os.geteuid() != 0:
            log.warning("--allow-local-network-access: needs root on Linux (policies live in /etc)")
            return
        written = []
        for folder in plat.CHROMIUM_POLICY_DIRS:
            path = opts.system_root / folder / "deskpilot.json"
            tracker.write(path, plat.chromium_lna_policy(port), f"{plat.LNA_POLICY} policy")
            written.append(str(path))
        tracker.state["policies"] = written
    elif sys.platform == "win32":
        reg = lay.deploy_dir / "local-network-access.reg"
        tracker.write(reg, plat.utf16(plat.windows_lna_reg(port)), "LNA policy (HKLM)")
        if opts.machine:  # HKLM needs an elevated install; per user, IT deploys the .reg or the GPO
            result = subprocess.run(f'reg import "{reg}"', shell=True, capture_output=True, check=False)
            log.info("ran       reg import %s -> %s", reg, result.returncode)
    else:
        tracker.write(
            lay.deploy_dir / "local-network-access.mobileconfig",
            plat.macos_lna_mobileconfig(port),
            "LNA policy profile (install it through MDM)",
        )


def _save_state(lay: Layout, tracker: _Tracker, opts: InstallOptions) -> None:
    state = {
        **tracker.state,
        "created_dirs": sorted(tracker.created_dirs),
        "machine": opts.machine,
        "port": lay.settings.port,
    }
    tracker.write(lay.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n", "install state")


def uninstall(keep_data: bool = False) -> int:
    lay = layout()
    state = read_state(lay)
    if lay.home.is_dir():
        _attach_file_log(lay)
    log.info("Deskpilot uninstall from %s%s", lay.home, " (keeping the data)" if keep_data else "")
    _remove_outside(lay, state)
    for sub in (lay.ca_dir, lay.manifests_dir, lay.deploy_dir):
        shutil.rmtree(sub, ignore_errors=True)
    for name in (INSTALLED_CERT, INSTALLED_KEY):
        (lay.settings.tls_dir / name).unlink(missing_ok=True)
    lay.state_file.unlink(missing_ok=True)
    log.info("removed   CA, localhost certificate, manifests and deployment package")
    if not keep_data:
        for h in list(log.handlers):
            if isinstance(h, logging.FileHandler):
                log.removeHandler(h)
                h.close()
        shutil.rmtree(lay.home, ignore_errors=True)
        log.info("removed   data folder %s", lay.home)
    for d in sorted(state.get("created_dirs", []), key=len, reverse=True):
        with contextlib.suppress(OSError):
            Path(d).rmdir()  # only if empty: never remove what someone else put there since
    log.info("uninstall done")
    return 0


def _remove_outside(lay: Layout, state: dict[str, Any]) -> None:
    """Autostart, trust-store entries and policies: everything the install put outside the data folder."""
    unit = Path(state["unit"]) if state.get("unit") else lay.unit_path(bool(state.get("machine")))
    if unit.is_file():
        if systemd_running() and unit.suffix == ".service":
            scope = "--global" if state.get("machine") else "--user"
            subprocess.run(
                ["systemctl", scope, "disable", "deskpilot.service"], capture_output=True, check=False
            )
        unit.unlink()
        log.info("removed   autostart %s", unit)
    if not sys.platform.startswith("linux"):
        _unregister_platform(lay, bool(state.get("machine")))
    for policy in state.get("policies", []):
        Path(policy).unlink(missing_ok=True)
        log.info("removed   policy %s", policy)
    if state.get("system_ca") and Path(state["system_ca"]).is_file():
        Path(state["system_ca"]).unlink()
        subprocess.run(["update-ca-certificates", "--fresh"], capture_output=True, check=False)
        log.info("removed   CA from the system store")
    db = NssDb(lay.nssdb)
    if db.available() and db.exists():
        if db.fingerprint(CA_NAME):
            db.delete(CA_NAME)
            log.info("removed   %r from NSS database %s", CA_NAME, lay.nssdb)
        if state.get("nssdb_created") and not db.nicknames():
            shutil.rmtree(lay.nssdb)
            log.info("removed   NSS database %s (the install created it)", lay.nssdb)

"""`deskpilot install` / `uninstall` / `doctor` on Linux, for real: a temporary HOME with a real NSS database
(Debian's libnss3-tools certutil), the systemd unit it writes, and the server started from that unit's
command, verified against the installed CA. The Windows and macOS pieces are checked for content only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from conftest import free_port

from deskpilot.addin_manifest import addin_id, validate
from deskpilot.installer import _platforms as plat
from deskpilot.installer import unit_command
from deskpilot.installer._ca import ensure_ca, ensure_server_cert, issued_by
from deskpilot.server.web.tls import ensure_certificate

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux install"),
]
CERTUTIL = shutil.which("certutil")
needs_certutil = pytest.mark.skipif(CERTUTIL is None, reason="needs certutil (apt-get install libnss3-tools)")
CA = "Deskpilot Local CA"


class Box:
    """A temporary HOME with Deskpilot's data under ~/.local/share/deskpilot, as a user's would be."""

    def __init__(self, root: Path) -> None:
        self.home = root / "user"
        self.data = self.home / ".local" / "share" / "deskpilot"
        self.nssdb = self.home / ".pki" / "nssdb"
        self.unit = self.home / ".config" / "systemd" / "user" / "deskpilot.service"
        self.port = free_port()
        self.config = root / "deploy.toml"
        self.config.write_text(f"[install]\nhealth_timeout = 90\n\n[settings]\nport = {self.port}\n")
        self.home.mkdir()
        # No XDG_RUNTIME_DIR / session bus: `systemctl --user` can never reach the real user's manager.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DESKPILOT_", "XDG_", "DBUS_SESSION_BUS_ADDRESS"))
        }
        self.env = {**env, "HOME": str(self.home), "DESKPILOT_HOME": str(self.data)}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "deskpilot.server.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def certutil(self, *args: str) -> str:
        return subprocess.run(
            ["certutil", *args, "-d", f"sql:{self.nssdb}"], capture_output=True, text=True, check=False
        ).stdout

    def snapshot(self) -> dict[str, str]:
        """Every path under HOME with its content hash; the install log (appended on every run) and
        the NSS sqlite files (rewritten by certutil even when nothing changes) are compared by listing."""
        out = {}
        for path in sorted(self.home.rglob("*")):
            rel = str(path.relative_to(self.home))
            if path.is_file() and path.name != "install.log" and path.parent != self.nssdb:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "dir" if path.is_dir() else "file"
        out["<nss listing>"] = self.certutil("-L") if self.nssdb.is_dir() else ""
        return out


@needs_certutil
@pytest.mark.process  # the server from the autostart unit, as a child process
def test_install_serve_reinstall_doctor_uninstall(tmp_path: Path) -> None:
    box = Box(tmp_path)
    # The user's browser already has an NSS database with a certificate of its own: it must survive.
    box.nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{box.nssdb}", "--empty-password"], check=True)
    other, _ = ensure_certificate(tmp_path / "other")
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{box.nssdb}", "-t", "P,,", "-n", "Someone Else", "-i", str(other)],
        check=True,
    )
    before = box.snapshot()

    first = box.run("install", "--config", str(box.config))  # the health check included
    assert "health    ok" in first.stdout, first.stdout
    if Path("/run/systemd/system").is_dir():
        assert "systemctl --user enable deskpilot.service:" in first.stdout
    else:
        assert "systemd is not running" in first.stdout  # said, not silently skipped
    log = (box.data / "logs" / "install.log").read_text()
    assert "trusted   'Deskpilot Local CA'" in log and "health    ok" in log

    # The CA is in the NSS database, trusted for TLS servers, next to the user's own.
    listing = box.certutil("-L")
    assert CA in listing and "Someone Else" in listing
    assert [line.split()[-1] for line in listing.splitlines() if line.startswith(CA)] == ["C,,"]
    ca_pem = box.data / "ca" / "ca.pem"
    assert (box.data / "ca" / "ca-key.pem").stat().st_mode & 0o077 == 0
    assert box.certutil("-L", "-n", CA, "-a").strip() == ca_pem.read_text().strip()

    # The per-user token, owner-only; the manifests carry it in the pane's start URL, so they are too.
    token = (box.data / "token").read_text().strip()
    assert len(token) >= 40 and (box.data / "token").stat().st_mode & 0o077 == 0
    # Manifests for the configured port, valid; the admin center zip holds both.
    for host in ("outlook", "word"):
        manifest = box.data / "manifests" / f"deskpilot-{host}.xml"
        xml = manifest.read_bytes()
        assert validate(xml) == [] and f"https://localhost:{box.port}/".encode() in xml
        assert f"index.html?host={host}&amp;token={token}".encode() in xml
        assert manifest.stat().st_mode & 0o077 == 0
    assert (box.data / "deploy" / "deskpilot-addins.zip").stat().st_mode & 0o077 == 0
    with zipfile.ZipFile(box.data / "deploy" / "deskpilot-addins.zip") as zf:
        assert sorted(zf.namelist()) == ["deskpilot-outlook.xml", "deskpilot-word.xml"]

    # The server started from the unit's own command answers over HTTPS with a certificate that verifies
    # against the installed CA (hostname checked), and the model loads.
    argv, env = unit_command(box.unit.read_text())
    assert env == {"DESKPILOT_HOME": str(box.data)} and argv[1:] == ["-m", "deskpilot.server.cli", "serve"]
    server = subprocess.Popen(
        argv, env={**box.env, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        ctx = ssl.create_default_context(cafile=str(ca_pem))
        url = f"https://localhost:{box.port}"
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(300):
            try:
                models = httpx.get(f"{url}/v1/models", headers=auth, verify=ctx, timeout=2)
                if models.json()["state"] == "ready":
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None
            import time

            time.sleep(0.1)
        else:
            pytest.fail("server from the unit never became ready")
        # The system's default trust store does not know our CA: verification really is against it.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", verify=ssl.create_default_context(), timeout=5)
    finally:
        server.terminate()
        server.wait(15)

    # A setting the admin added later survives reinstalls (an upgrade keeps settings and data).
    with (box.data / "config.toml").open("a") as f:
        f.write("threads = 2\n")
    installed = box.snapshot()
    nss_bytes = {p.name: p.read_bytes() for p in box.nssdb.iterdir()}
    second = box.run("install", "--config", str(box.config), "--no-health-check")
    assert "install changed nothing" in second.stdout, second.stdout
    assert box.snapshot() == installed
    assert {p.name: p.read_bytes() for p in box.nssdb.iterdir()} == nss_bytes  # not even rewritten

    # A server already on the port with another certificate is reported, not silently reused.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", box.port))
        squatter.listen()
        busy = box.run("install", "--config", str(box.config), check=False)
    assert busy.returncode == 1 and "does not answer with the CA-issued certificate" in busy.stdout

    assert box.run("doctor").returncode == 0
    # Rotating the token rewrites the installed manifests and package with the new one.
    rotated = box.run("token", "rotate")
    new_token = (box.data / "token").read_text().strip()
    assert new_token != token and "rewritten" in rotated.stdout
    outlook = (box.data / "manifests" / "deskpilot-outlook.xml").read_bytes()
    assert f"token={new_token}".encode() in outlook and token.encode() not in outlook
    with zipfile.ZipFile(box.data / "deploy" / "deskpilot-addins.zip") as zf:
        assert f"token={new_token}".encode() in zf.read("deskpilot-word.xml")
    assert box.run("doctor").returncode == 0
    # A manifest left with the old token is found.
    (box.data / "manifests" / "deskpilot-word.xml").write_bytes(
        outlook.replace(new_token.encode(), token.encode())
    )
    stale = box.run("doctor", check=False)
    assert stale.returncode == 1 and "FAIL  word manifest carries the current access token" in stale.stdout
    box.run("token", "rotate")
    subprocess.run(["certutil", "-D", "-d", f"sql:{box.nssdb}", "-n", CA], check=True)
    broken = box.run("doctor", check=False)
    assert broken.returncode == 1
    assert f"FAIL  {CA!r} is in the NSS database" in broken.stdout
    assert "fix: run `deskpilot install`" in broken.stdout
    repaired = box.run("install", "--config", str(box.config), "--no-health-check")
    assert "install changed 1 item(s)" in repaired.stdout and box.run("doctor").returncode == 0

    box.run("uninstall")
    assert box.snapshot() == before  # the file tree, contents and NSS listing, as they were
    assert "Someone Else" in box.certutil("-L")


@needs_certutil
@pytest.mark.process  # certutil runs as a child process
def test_uninstall_keep_data_keeps_settings_and_database(tmp_path: Path) -> None:
    box = Box(tmp_path)
    box.run("install", "--config", str(box.config), "--no-health-check")
    assert box.nssdb.is_dir()  # created by the install, since this HOME had none
    (box.data / "deskpilot.db").write_bytes(b"user data")
    box.run("uninstall", "--keep-data")
    assert (box.data / "deskpilot.db").read_bytes() == b"user data"
    assert f"port = {box.port}" in (box.data / "config.toml").read_text()
    assert not (box.data / "ca").exists() and not box.unit.exists() and not box.nssdb.exists()
    assert box.run("doctor", check=False).returncode == 1
    # Reinstalling over kept data (an upgrade) keeps it.
    box.run("install", "--no-health-check")
    assert (box.data / "deskpilot.db").read_bytes() == b"user data"


def test_server_prefers_the_ca_issued_certificate(tmp_path: Path) -> None:
    ca, ca_key, _ = ensure_ca(tmp_path / "ca")
    tls = tmp_path / "tls"
    assert ensure_certificate(tls)[0].name == "localhost.pem"  # no install: self-signed
    cert, key, created = ensure_server_cert(tls, ca, ca_key)
    assert created and ensure_certificate(tls) == (cert, key)
    assert issued_by(cert.read_bytes(), ca.read_bytes())
    other_ca, _, _ = ensure_ca(tmp_path / "other-ca")  # same name, another key: the signature is wrong
    assert not issued_by(cert.read_bytes(), other_ca.read_bytes())
    assert ensure_server_cert(tls, ca, ca_key)[2] is False  # still good: not rewritten
    assert ensure_ca(tmp_path / "ca")[2] is False


def test_ca_is_name_constrained_to_loopback(tmp_path: Path) -> None:
    from cryptography import x509

    ca, _, _ = ensure_ca(tmp_path / "ca")
    cert = x509.load_pem_x509_certificate(ca.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert ext.critical
    assert {str(n.value) for n in ext.value.permitted_subtrees} == {"localhost", "127.0.0.1/32", "::1/128"}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0


def test_windows_pieces() -> None:
    python = r"C:\Program Files\Deskpilot\python.exe"
    task = plat.windows_task_xml(8765, python, "CONTOSO\\alice")
    assert "<LogonTrigger>" in task and "<UserId>CONTOSO\\alice</UserId>" in task
    assert r"<Command>C:\Program Files\Deskpilot\pythonw.exe</Command>" in task
    assert "<Arguments>-m deskpilot.server.cli serve</Arguments>" in task
    assert "<RunLevel>LeastPrivilege</RunLevel>" in task
    assert plat.windows_trust_commands(r"C:\x\ca.cer") == [r'certutil -user -f -addstore Root "C:\x\ca.cer"']
    assert plat.windows_untrust_commands(CA) == [f'certutil -user -delstore Root "{CA}"']
    reg = plat.windows_sideload_reg({addin_id("word"): r"C:\Users\a\deskpilot-word.xml"})
    assert r"[HKEY_CURRENT_USER\Software\Microsoft\Office\16.0\WEF\Developer]" in reg
    assert f'"{addin_id("word")}"="C:\\\\Users\\\\a\\\\deskpilot-word.xml"' in reg and "\r\n" in reg
    assert f'"{addin_id("word")}"=-' in plat.windows_unsideload_reg([addin_id("word")])
    lna = plat.windows_lna_reg(8765)
    assert r"[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\Edge\LocalNetworkAccessAllowedForUrls]" in lna
    assert r"[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Google\Chrome\LocalNetworkAccessAllowedForUrls]" in lna
    assert '"1"="https://localhost:8765"' in lna and '"2"="https://outlook.office.com"' in lna
    assert plat.utf16(task)[:2] == b"\xff\xfe" and plat.utf16(task).decode("utf-16") == task
    script = (Path(plat.__file__).parent / "windows" / "install.ps1").read_text()
    for needle in (
        '@("install")',
        '"--config"',
        '@("uninstall")',
        '"--keep-data"',
        "$LASTEXITCODE",
        "Start-Transcript",
        "doctor",
    ):
        assert needle in script


def test_macos_pieces(tmp_path: Path) -> None:
    import plistlib

    agent = plistlib.loads(
        plat.macos_launch_agent(
            Path("/Users/a/Library/Application Support/deskpilot"), "/opt/deskpilot/bin/python"
        ).encode()
    )
    assert agent["Label"] == "com.deskpilot.server" and agent["RunAtLoad"] is True
    assert agent["ProgramArguments"] == ["/opt/deskpilot/bin/python", "-m", "deskpilot.server.cli", "serve"]
    assert agent["EnvironmentVariables"]["DESKPILOT_HOME"].endswith("deskpilot")
    assert plat.macos_trust_commands("/a b/ca.pem") == [
        "security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db '/a b/ca.pem'"
    ]
    assert "/Library/Keychains/System.keychain" in plat.macos_trust_commands("/c.pem", machine=True)[0]
    assert plat.macos_untrust_commands("/c.pem") == ["security remove-trusted-cert /c.pem"]
    profile = plistlib.loads(plat.macos_lna_mobileconfig(8765).encode())
    payloads = profile["PayloadContent"]
    assert {p["PayloadType"] for p in payloads} == {"com.google.Chrome", "com.microsoft.Edge"}
    assert all("https://localhost:8765" in p["LocalNetworkAccessAllowedForUrls"] for p in payloads)


def test_linux_policy_and_unit_templates() -> None:
    import json

    policy = json.loads(plat.chromium_lna_policy(9000))
    assert policy["LocalNetworkAccessAllowedForUrls"][0] == "https://localhost:9000"
    assert "etc/opt/edge/policies/managed" in plat.CHROMIUM_POLICY_DIRS
    assert "etc/opt/chrome/policies/managed" in plat.CHROMIUM_POLICY_DIRS
    unit = plat.systemd_unit(Path("/home/a b/.local/share/deskpilot"), 9000, "/usr/bin/python3")
    argv, env = unit_command(unit)
    assert argv == ["/usr/bin/python3", "-m", "deskpilot.server.cli", "serve"]
    assert env == {"DESKPILOT_HOME": "/home/a b/.local/share/deskpilot"}
    assert "WantedBy=default.target" in unit


@needs_certutil
@pytest.mark.skipif(os.geteuid() != 0, reason="machine-wide steps need root")
def test_machine_install_writes_policies_and_system_ca_under_the_system_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from deskpilot.installer import InstallOptions, install, uninstall

    box = Box(tmp_path)
    root = tmp_path / "root"
    for name, value in box.env.items():
        if name.startswith(("HOME", "DESKPILOT_")):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        "deskpilot.installer._install.subprocess.run", _no_update_ca_certificates(subprocess.run)
    )
    opts = InstallOptions(
        machine=True,
        allow_local_network_access=True,
        health_check=False,
        settings={"port": box.port},
        system_root=root,
    )
    assert install(opts) == 0
    for folder in ("etc/opt/chrome", "etc/chromium", "etc/opt/edge"):
        policy = json.loads((root / folder / "policies/managed/deskpilot.json").read_text())
        assert policy == {"LocalNetworkAccessAllowedForUrls": plat.lna_origins(box.port)}
    system_ca = root / "usr/local/share/ca-certificates/deskpilot-local-ca.crt"
    assert system_ca.read_bytes() == (box.data / "ca" / "ca.pem").read_bytes()
    assert (root / "etc/systemd/user/deskpilot.service").is_file()
    uninstall()
    assert not root.exists()  # the folders the install created under it went too


def _no_update_ca_certificates(run):  # type: ignore[no-untyped-def]
    """The test writes the system CA under a temporary root; never refresh the real system store."""

    def guarded(cmd, *args, **kwargs):  # type: ignore[no-untyped-def]
        if cmd and cmd[0] == "update-ca-certificates":
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return run(cmd, *args, **kwargs)

    return guarded


def test_config_file_with_an_unknown_key_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    box = Box(tmp_path)
    box.config.write_text("[install]\nmachine_wide = true\n")
    result = box.run("install", "--config", str(box.config), check=False)
    assert result.returncode == 2 and "unknown keys ['machine_wide']" in result.stderr
    assert list(box.home.iterdir()) == []


CHROMIUM = os.environ.get("DESKPILOT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@needs_certutil
@pytest.mark.process  # a browser and a server as child processes
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium (Debian's chromium package)")
def test_chromium_trusts_the_server_through_the_installed_nss_entry(tmp_path: Path) -> None:
    """The trust store is the one Chromium-based web views use: a real Chromium in this HOME loads the
    page without any certificate flag, and stops loading it once the CA is taken out of the NSS database."""
    box = Box(tmp_path)
    box.run("install", "--config", str(box.config), "--no-health-check")
    argv, env = unit_command(box.unit.read_text())
    server = subprocess.Popen(
        argv, env={**box.env, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def chromium_page(profile: str) -> str:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={tmp_path / profile}",
                "--dump-dom",
                f"https://localhost:{box.port}/healthz",
            ],
            env=box.env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        ).stdout

    try:
        ctx = ssl.create_default_context(cafile=str(box.data / "ca" / "ca.pem"))
        for _ in range(300):
            try:
                httpx.get(f"https://localhost:{box.port}/healthz", verify=ctx, timeout=2)
                break
            except httpx.TransportError:
                import time

                time.sleep(0.1)
        assert '"status":"ok"' in chromium_page("trusted")
        subprocess.run(["certutil", "-D", "-d", f"sql:{box.nssdb}", "-n", CA], check=True)
        assert '"status":"ok"' not in chromium_page("untrusted")
    finally:
        server.terminate()
        server.wait(15)


@needs_certutil
@pytest.mark.process  # certutil runs as a child process
def test_doctor_reports_a_stale_port_and_an_exposed_ca_key(tmp_path: Path) -> None:
    box = Box(tmp_path)
    box.run("install", "--config", str(box.config), "--no-health-check")
    assert box.run("doctor").returncode == 0
    config = box.data / "config.toml"
    config.write_text(config.read_text().replace(f"port = {box.port}", "port = 9999"))
    os.chmod(box.data / "ca" / "ca-key.pem", 0o644)
    report = box.run("doctor", check=False)
    assert report.returncode == 1
    assert "FAIL  CA key is owner-only (0o644)" in report.stdout
    assert f"fix: chmod 600 {box.data / 'ca' / 'ca-key.pem'}" in report.stdout
    assert f"FAIL  autostart unit {box.unit} is current (port 9999)" in report.stdout
    assert "FAIL  outlook manifest" in report.stdout and "4 problem(s) found" in report.stdout
    box.run("install", "--no-health-check")  # repairs: key permissions; manifests and unit follow the port
    assert (box.data / "ca" / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert box.run("doctor").returncode == 0
    assert "https://localhost:9999/" in (box.data / "manifests" / "deskpilot-word.xml").read_text()


@needs_certutil
@pytest.mark.process  # certutil runs as a child process
def test_health_check_fails_fast_when_the_served_certificate_is_not_from_the_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from deskpilot.installer import layout
    from deskpilot.installer._health import health_check

    box = Box(tmp_path)
    box.run("install", "--config", str(box.config), "--no-health-check")
    # The server prefers tls/installed.pem; replace it with a self-signed pair the CA never signed.
    cert, key = ensure_certificate(tmp_path / "rogue")
    shutil.copy(cert, box.data / "tls" / "installed.pem")
    shutil.copy(key, box.data / "tls" / "installed-key.pem")
    for name in ("HOME", "DESKPILOT_HOME"):
        monkeypatch.setenv(name, box.env[name])
    started = time.monotonic()
    assert health_check(layout(), box.data / "ca" / "ca.pem", timeout=60) is False
    assert time.monotonic() - started < 30
    assert "does not verify against the local CA" in caplog.text


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_windows_and_macos_steps_are_written_and_run_as_these_commands(
    platform: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orchestration for the other systems, with their commands recorded instead of run."""
    from deskpilot.installer import _install

    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    lay = _install.layout()
    ca, _, _ = ensure_ca(lay.ca_dir)
    ran: list[str] = []

    def record(cmd, *args, **kwargs):  # type: ignore[no-untyped-def]
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(_install.subprocess, "run", record)
    monkeypatch.setattr(_install.sys, "platform", platform)
    tracker = _install._Tracker({})
    _install._write_platform_scripts(lay, tracker, ca, _install.InstallOptions())
    deploy = lay.deploy_dir
    if platform == "win32":
        assert ran == [
            f'certutil -user -f -addstore Root "{deploy / "deskpilot-ca.cer"}"',
            f'reg import "{deploy / "sideload.reg"}"',
            f'schtasks /Create /F /TN "Deskpilot\\Server" /XML "{deploy / "deskpilot-task.xml"}"',
        ]
        reg = (deploy / "sideload.reg").read_bytes().decode("utf-16")
        assert addin_id("outlook") in reg and addin_id("word") in reg
        assert "<LogonTrigger>" in (deploy / "deskpilot-task.xml").read_bytes().decode("utf-16")
    else:
        agent = tmp_path / "user" / "Library" / "LaunchAgents" / "com.deskpilot.server.plist"
        keychain = "~/Library/Keychains/login.keychain-db"
        assert ran[0] == f"security add-trusted-cert -r trustRoot -k {keychain} {ca}"
        assert ran[1] == f"launchctl bootstrap gui/{os.getuid()} {agent}"
        assert str(lay.home) in agent.read_text()
        ran.clear()
        _install._unregister_platform(lay, machine=False)
        assert ran == [f"launchctl bootout gui/{os.getuid()} {agent}", f"security remove-trusted-cert {ca}"]

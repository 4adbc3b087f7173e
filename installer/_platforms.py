"""What each operating system needs, rendered as text: units, plists, task XML, scripts, policies.

Everything here is a pure function of its arguments (no I/O, no clock), so a second install renders the
same bytes and the tests can check the Windows and macOS pieces on any machine.
"""

from __future__ import annotations

import json
import shlex
import sys
from importlib.resources import files
from pathlib import PurePath, PureWindowsPath
from string import Template
from xml.sax.saxutils import escape

__all__ = [
    "CHROMIUM_POLICY_DIRS",
    "LNA_POLICY",
    "lna_origins",
    "macos_launch_agent",
    "macos_lna_mobileconfig",
    "macos_trust_commands",
    "serve_command",
    "systemd_unit",
    "utf16",
    "windows_lna_reg",
    "windows_sideload_reg",
    "windows_task_xml",
    "windows_trust_commands",
]

LNA_POLICY = "LocalNetworkAccessAllowedForUrls"
# Linux machine-wide managed policy folders of Google Chrome, Chromium and Microsoft Edge.
CHROMIUM_POLICY_DIRS = (
    "etc/opt/chrome/policies/managed",
    "etc/chromium/policies/managed",
    "etc/opt/edge/policies/managed",
)
_WEF_DEVELOPER = r"HKEY_CURRENT_USER\Software\Microsoft\Office\16.0\WEF\Developer"


def _template(name: str) -> Template:
    return Template(files("deskpilot.installer").joinpath("templates", name).read_text(encoding="utf-8"))


def utf16(text: str) -> bytes:
    """regedit's "Version 5.00" files and schtasks /XML (declared UTF-16) want UTF-16LE with a BOM."""
    return ("\ufeff" + text).encode("utf-16-le")


def serve_command(python: str | None = None) -> list[str]:
    """The command autostart runs: this interpreter, so the unit uses the environment Deskpilot is in."""
    return [python or sys.executable, "-m", "deskpilot.server.cli", "serve"]


def systemd_unit(home: PurePath, port: int, python: str | None = None) -> str:
    exec_start = " ".join(shlex.quote(part) for part in serve_command(python))
    return _template("deskpilot.service").substitute(home=str(home), port=port, exec_start=exec_start)


def macos_launch_agent(home: PurePath, python: str | None = None) -> str:
    args = "\n".join(f"    <string>{escape(a)}</string>" for a in serve_command(python))
    return _template("com.deskpilot.server.plist").substitute(
        program_arguments=args, home=escape(str(home)), log_dir=escape(str(home / "logs"))
    )


def windows_task_xml(port: int, python: str, user: str | None = None) -> str:
    """Scheduled Task at logon (per user when `user` is given, any user otherwise, for --machine)."""
    pythonw = str(PureWindowsPath(python).with_name("pythonw.exe"))
    user_id = f"      <UserId>{escape(user)}</UserId>" if user else ""
    return _template("deskpilot-task.xml").substitute(
        port=port, user_id=user_id, command=escape(pythonw), arguments="-m deskpilot.server.cli serve"
    )


def windows_trust_commands(ca_cer: str, machine: bool = False) -> list[str]:
    """certutil adds the CA to the Root store Edge WebView2 (Office's web view) trusts."""
    store = [] if machine else ["-user"]
    return [" ".join(["certutil", *store, "-f", "-addstore", "Root", f'"{ca_cer}"'])]


def windows_untrust_commands(ca_name: str, machine: bool = False) -> list[str]:
    store = [] if machine else ["-user"]
    return [" ".join(["certutil", *store, "-delstore", "Root", f'"{ca_name}"'])]


def windows_sideload_reg(manifests: dict[str, str]) -> str:
    """Registry developer catalog: Word/Outlook desktop load each manifest listed (value name = add-in id)."""
    lines = ["Windows Registry Editor Version 5.00", "", f"[{_WEF_DEVELOPER}]"]
    for addin_id, path in sorted(manifests.items()):
        lines.append(f'"{addin_id}"="{path.replace(chr(92), chr(92) * 2)}"')
    return "\r\n".join(lines) + "\r\n"


def windows_unsideload_reg(addin_ids: list[str]) -> str:
    lines = ["Windows Registry Editor Version 5.00", "", f"[{_WEF_DEVELOPER}]"]
    lines += [f'"{addin_id}"=-' for addin_id in sorted(addin_ids)]
    return "\r\n".join(lines) + "\r\n"


def lna_origins(port: int) -> list[str]:
    """Pages allowed to reach the local server: Office on the web and the server's own origin."""
    return [
        f"https://localhost:{port}",
        "https://outlook.office.com",
        "https://outlook.office365.com",
        "https://[*.]officeapps.live.com",
        "https://[*.]office.com",
    ]


def chromium_lna_policy(port: int) -> str:
    return json.dumps({LNA_POLICY: lna_origins(port)}, indent=2) + "\n"


def windows_lna_reg(port: int, machine: bool = True) -> str:
    """Edge and Chrome read list policies as numbered values under <policy key>\\<name>."""
    hive = "HKEY_LOCAL_MACHINE" if machine else "HKEY_CURRENT_USER"
    lines = ["Windows Registry Editor Version 5.00"]
    for vendor in (r"Microsoft\Edge", r"Google\Chrome"):
        lines += ["", f"[{hive}\\SOFTWARE\\Policies\\{vendor}\\{LNA_POLICY}]"]
        lines += [f'"{i}"="{origin}"' for i, origin in enumerate(lna_origins(port), 1)]
    return "\r\n".join(lines) + "\r\n"


def macos_trust_commands(ca_pem: str, machine: bool = False) -> list[str]:
    if machine:
        return [
            f"sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain "
            f"{shlex.quote(ca_pem)}"
        ]
    return [
        f"security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db "
        f"{shlex.quote(ca_pem)}"
    ]


def macos_untrust_commands(ca_pem: str, machine: bool = False) -> list[str]:
    return [
        f"{'sudo ' if machine else ''}security remove-trusted-cert {'-d ' if machine else ''}"
        f"{shlex.quote(ca_pem)}"
    ]


def macos_lna_mobileconfig(port: int) -> str:
    """A configuration profile setting the policy for Chrome and Edge (deploy through MDM)."""
    origins = "\n".join(f"          <string>{escape(o)}</string>" for o in lna_origins(port))
    payloads = []
    for domain, uuid in (
        ("com.google.Chrome", "6B0F1C0E-5D1B-4C1E-9E1A-2E4C3B8A0001"),
        ("com.microsoft.Edge", "6B0F1C0E-5D1B-4C1E-9E1A-2E4C3B8A0002"),
    ):
        payloads.append(f"""      <dict>
        <key>PayloadType</key>
        <string>{domain}</string>
        <key>PayloadIdentifier</key>
        <string>com.deskpilot.lna.{domain}</string>
        <key>PayloadUUID</key>
        <string>{uuid}</string>
        <key>PayloadVersion</key>
        <integer>1</integer>
        <key>{LNA_POLICY}</key>
        <array>
{origins}
        </array>
      </dict>""")
    body = "\n".join(payloads)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadDisplayName</key>
  <string>Deskpilot: allow Office to reach the local server</string>
  <key>PayloadIdentifier</key>
  <string>com.deskpilot.lna</string>
  <key>PayloadType</key>
  <string>Configuration</string>
  <key>PayloadUUID</key>
  <string>6B0F1C0E-5D1B-4C1E-9E1A-2E4C3B8A0000</string>
  <key>PayloadVersion</key>
  <integer>1</integer>
  <key>PayloadContent</key>
  <array>
{body}
  </array>
</dict>
</plist>
"""

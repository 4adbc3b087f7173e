"""The NSS certificate database Chromium-based browsers (and Office's web view on Linux) trust: certutil."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from deskpilot.installer._ca import fingerprint

__all__ = ["NssDb"]


class NssDb:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.spec = f"sql:{path}"

    def available(self) -> bool:
        return shutil.which("certutil") is not None

    def exists(self) -> bool:
        return (self.path / "cert9.db").is_file()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["certutil", *args, "-d", self.spec], capture_output=True, text=True, check=check
        )

    def create(self) -> None:
        self._run("-N", "--empty-password")

    def add(self, nickname: str, cert: Path) -> None:
        self._run("-A", "-t", "C,,", "-n", nickname, "-i", str(cert))

    def delete(self, nickname: str) -> None:
        while self._run("-D", "-n", nickname, check=False).returncode == 0:
            pass  # certutil deletes one certificate per call; a nickname can hold several

    def fingerprint(self, nickname: str) -> str | None:
        """SHA-256 of the certificate stored under `nickname`, if any."""
        result = self._run("-L", "-n", nickname, "-a", check=False)
        if result.returncode != 0 or "BEGIN CERTIFICATE" not in result.stdout:
            return None
        pem = result.stdout[result.stdout.index("-----BEGIN") :]
        end = "-----END CERTIFICATE-----"
        return fingerprint((pem.split(end)[0] + end + "\n").encode())

    def trust(self, nickname: str) -> str | None:
        """The trust flags (e.g. "C,,") of `nickname`, from `certutil -L`."""
        for line in self.listing().splitlines()[4:]:
            parts = line.rstrip().rsplit(None, 1)
            if len(parts) == 2 and parts[0].strip() == nickname:
                return parts[1]
        return None

    def listing(self) -> str:
        return self._run("-L", check=False).stdout

    def nicknames(self) -> list[str]:
        lines = self.listing().splitlines()[4:]  # a three-line header and a blank line
        return [line.rstrip().rsplit(None, 1)[0].strip() for line in lines if len(line.split()) > 1]

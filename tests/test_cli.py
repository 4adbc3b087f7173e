"""The `deskpilot` command line, run as a user would: a real process, the real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

EML = b"""From: Carol Diaz <carol@example.com>
To: Bob <bob@example.com>
Subject: Q3 numbers for the board pack
Date: Mon, 16 Nov 2026 09:12:00 +0100
Content-Type: text/plain; charset=utf-8

Hi Bob, the board meeting moved to Thursday. Please send the Q3 sales figures by Tuesday evening.
Thanks, Carol
"""


def deskpilot(*args: str, stdin: bytes | None = None, home: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "deskpilot.server.cli", *args],
        input=stdin,
        capture_output=True,
        env={"DESKPILOT_HOME": str(home), "PATH": ""},
        timeout=120,
    )


@pytest.mark.model
def test_summarize_an_eml_file_streams_and_records_a_cli_run(tmp_path: Path, app_home: Path) -> None:
    mail = tmp_path / "board.eml"
    mail.write_bytes(EML)
    done = deskpilot("summarize", str(mail), home=app_home)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip()
    assert b"run " in done.stderr and b"first token" in done.stderr
    exported = deskpilot("audit", "export", "--format", "jsonl", home=app_home)
    (run,) = [json.loads(line) for line in exported.stdout.decode().splitlines()]
    assert run["client"] == "cli" and run["task"] == "summarize" and run["status"] == "ok"
    assert run["source_ref"] == str(mail.resolve())
    assert run["output"].strip() == done.stdout.decode().strip()


@pytest.mark.model
def test_summarize_reads_standard_input(app_home: Path) -> None:
    done = deskpilot(
        "summarize",
        "-",
        "--sentences",
        "1",
        stdin=b"The office is closed on Friday for maintenance.",
        home=app_home,
    )
    assert done.returncode == 0 and done.stdout.decode().strip(), done.stderr.decode()


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (["summarize", "/no/such/file.txt"], None, "no such file"),
        (["summarize", "-"], b"   \n", "the input is empty"),
        (["summarize", "-", "--sentences", "0"], b"x", "0 is not in the range"),
        (["serve", "--host", "0.0.0.0", "--http"], None, "not a loopback address"),
        (["serve", "--host", "192.168.1.10", "--http"], None, "not a loopback address"),
    ],
)
def test_bad_input_gets_a_clear_error_line(
    app_home: Path, args: list[str], stdin: bytes | None, says: str
) -> None:
    done = deskpilot(*args, stdin=stdin, home=app_home)
    assert done.returncode == 2
    assert says in done.stderr.decode()
    assert b"Traceback" not in done.stderr


def test_a_bad_setting_is_a_clear_error(app_home: Path) -> None:
    app_home.mkdir(parents=True)
    (app_home / "config.toml").write_text("port = 'eighty'\n")
    done = deskpilot("serve", "--http", home=app_home)
    assert done.returncode == 2 and b"invalid setting" in done.stderr and b"port" in done.stderr

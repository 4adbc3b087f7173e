"""`deskpilot sync` as a real process against the Graph stand-in: kill -9 mid-run and resume; tokens never
reach the disk outside the keyring backend the test selected."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from graph_helpers import assert_index_holds, graph_env, graph_settings, sign_in, vault  # noqa: F401

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.server.connectors.standin import Faults, StandIn, generate

pytestmark = [pytest.mark.process, pytest.mark.usefixtures("vault")]

# The real `deskpilot sync` command, with the torch-free embedder (as `deskpilot index` tests do) and
# everything logged at DEBUG to a file, so the leak scan also covers what msal, O365 and urllib3 log.
_SYNC = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, filename=sys.argv[1])
from deskpilot.indexes import HashEmbedder
from deskpilot.server.cli import main
main(["sync", *sys.argv[2:]], obj={"embedder": HashEmbedder()})
"""


def sync_process(home: Path, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _SYNC, str(log), *args],
        env={**os.environ, "DESKPILOT_HOME": str(home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _scope_requests(standin: StandIn, since: int) -> list[tuple[str, str]]:
    return [(path, query) for _, _, path, query, _ in standin.requests[since:] if path.endswith("/delta")]


def test_kill_9_mid_sync_resumes_from_the_last_recorded_link(app_home: Path, tmp_path: Path) -> None:
    # Every Graph answer takes 40 ms, so the kill lands mid-run, after some pages are committed.
    slow = Faults(rate=1.0, kinds={"slow": 1.0}, slow_seconds=0.04)
    with StandIn(
        generate(seed=8, messages=200, files=12, events=10), faults=slow, max_page_size=10
    ) as standin:
        settings = graph_settings(standin, home=app_home)
        sign_in(settings)
        env = graph_env(standin, DESKPILOT_GRAPH_PAGE_SIZE="10")
        proc = sync_process(app_home, env, tmp_path / "sync-1.log")
        deadline = time.monotonic() + 60
        while sum(1 for r in standin.requests if "/messages/delta" in r[2]) < 12:
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL

        with sqlite3.connect(settings.sync_db_path) as db:
            cursors = db.execute("SELECT scope, delta_link, next_link FROM cursors").fetchall()
            runs = db.execute("SELECT status FROM runs").fetchall()
        assert runs == [("running",)]  # it never got to record an end
        in_progress = {scope: nxt for scope, delta, nxt in cursors if nxt}
        done = {scope for scope, delta, nxt in cursors if delta and not nxt}
        assert in_progress or done, cursors
        with DocumentIndex(app_home / "index", embedder=HashEmbedder()) as index:
            assert index.verify() == []
            partial = index.status().documents
        assert 0 < partial < len(standin.tenant.expected())

        mark = len(standin.requests)
        proc = sync_process(app_home, env, tmp_path / "sync-2.log")
        out = proc.communicate(timeout=120)[0].decode()
        assert proc.returncode == 0, out
        # Resumed: each interrupted round went on from its recorded next page, finished rounds from their
        # delta link; no folder was enumerated from scratch again.
        requests = _scope_requests(standin, mark)
        for scope, next_link in in_progress.items():
            path = unquote(next_link.split("?")[0].split(str(standin.port), 1)[1])
            first = next(q for p, q in requests if p == path)
            assert first == next_link.split("?", 1)[1], scope
        for scope in done:
            if scope.startswith("mail:"):
                first = next(q for p, q in requests if scope.removeprefix("mail:") in p)
                assert "$deltatoken=" in first, scope  # a finished round goes on from its delta link
        started_over = [
            p
            for p, q in requests
            if "$skiptoken" not in q and "$deltatoken" not in q and "/messages/delta" in p
        ]
        resumed_folders = {s.removeprefix("mail:") for s in (*in_progress, *done) if s.startswith("mail:")}
        assert not any(folder_id in p for p in started_over for folder_id in resumed_folders)
        with sqlite3.connect(settings.sync_db_path) as db:
            assert db.execute("SELECT status FROM runs ORDER BY id").fetchall() == [("interrupted",), ("ok",)]
            assert db.execute("SELECT count(*) FROM cursors WHERE next_link IS NOT NULL").fetchone() == (0,)
        with DocumentIndex(app_home / "index", embedder=HashEmbedder()) as index:
            assert_index_holds(index, standin.tenant.expected(max_file_bytes=settings.graph_max_file_bytes))


def _files_under(root: Path, since: float | None = None) -> list[Path]:
    out = []
    for dirpath, _dirnames, filenames in os.walk(root, onerror=lambda e: None):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if (
                    path.is_file()
                    and not path.is_symlink()
                    and path.stat().st_size < 50_000_000
                    and (since is None or path.stat().st_mtime >= since)
                ):
                    out.append(path)
            except OSError:
                continue
    return out


def test_tokens_appear_nowhere_on_disk_but_in_the_selected_keyring(
    app_home: Path,
    tmp_path: Path,
    vault: Path,  # noqa: F811 - the fixture imported from graph_helpers, which pytest injects here
) -> None:
    started = time.time() - 1
    with StandIn(
        generate(seed=6, messages=40, files=6, events=4),
        faults=Faults(rate=0.2, kinds={"unavailable": 1.0, "malformed": 1.0, "drop": 1.0}),
    ) as standin:
        settings = graph_settings(standin, home=app_home)
        sign_in(settings)
        env = graph_env(standin)
        proc = sync_process(app_home, env, tmp_path / "sync.log")
        first = proc.communicate(timeout=120)[0].decode()
        assert proc.returncode == 0, first
        standin.revoke_access_tokens()  # the next run refreshes: new tokens, written to the keyring
        standin.tenant.add_message(standin.tenant.folder("Inbox").id, "After refresh", "More text")
        proc = sync_process(app_home, env, tmp_path / "sync-again.log")
        second = proc.communicate(timeout=120)[0].decode()
        assert proc.returncode == 0, second
        assert standin.stats["refreshes"] >= 1 and len(standin.issued) >= 4

    secrets = [t.encode() for t in standin.issued]
    kept = vault.read_bytes()
    assert any(s in kept for s in secrets)  # the scan below would find them: they are in the keyring
    assert (tmp_path / "sync.log").stat().st_size > 0 and (app_home / "graph-sync.db").exists()
    assert (app_home / "index" / "meta.db").exists()
    scanned = [p for p in _files_under(tmp_path) if p != vault]
    scanned += [
        p
        for p in _files_under(Path(tempfile.gettempdir()), since=started)
        if tmp_path not in p.parents and p != vault
    ]
    leaks = [str(p) for p in scanned if any(s in p.read_bytes() for s in secrets)]
    assert leaks == []
    names = {p.name for p in scanned}
    assert {"sync.log", "sync-again.log", "graph-sync.db", "meta.db", "vectors.faiss"} <= names, names
    assert first.count("Traceback") == 0 and second.count("Traceback") == 0

"""Shared pieces of the connector tests: the keyring vault, settings that point at the stand-in, index
checks."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.core
import pytest

from deskpilot.indexes import DocumentIndex
from deskpilot.server.connectors.auth import GraphAuth
from deskpilot.server.connectors.standin import StandIn
from deskpilot.server.settings import Settings, load_settings

TESTS = Path(__file__).resolve().parent
VAULT_BACKEND = "keyring_vault.VaultKeyring"


def use_keyring(monkeypatch: pytest.MonkeyPatch, backend: str, tmp_path: Path) -> Path:
    """Select a keyring backend the way a user would (PYTHON_KEYRING_BACKEND), for this process and its
    children; plaintext backends write under tmp_path, never under the real home."""
    vault = tmp_path / "keyring" / "vault.json"
    vault.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", backend)
    monkeypatch.setenv("DESKPILOT_TEST_VAULT", str(vault))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "keyring" / "xdg"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    if str(TESTS) not in sys.path:
        monkeypatch.syspath_prepend(str(TESTS))
    keyring.core.init_backend()
    return vault


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    path = use_keyring(monkeypatch, VAULT_BACKEND, tmp_path)
    yield path
    keyring.core.set_keyring(
        keyring.backends.fail.Keyring()
    )  # nothing after this test reaches a real keyring


def graph_settings(standin: StandIn, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "graph_client_id": "deskpilot-tests",
        "graph_tenant": "contoso.example",
        "graph_base_url": standin.graph_url,
        "graph_authority_host": standin.authority_host,
        "graph_authority_loopback": standin.url,
        "graph_backoff_seconds": 0.01,
        "graph_timeout_seconds": 1.0,
        "graph_page_size": 25,
    }
    values.update(overrides)
    return load_settings(**values)  # type: ignore[arg-type]


def graph_env(standin: StandIn, **overrides: str) -> dict[str, str]:
    """The same settings for a child process (`deskpilot sync`)."""
    return {
        "DESKPILOT_GRAPH_CLIENT_ID": "deskpilot-tests",
        "DESKPILOT_GRAPH_TENANT": "contoso.example",
        "DESKPILOT_GRAPH_BASE_URL": standin.graph_url,
        "DESKPILOT_GRAPH_AUTHORITY_HOST": standin.authority_host,
        "DESKPILOT_GRAPH_AUTHORITY_LOOPBACK": standin.url,
        "DESKPILOT_GRAPH_BACKOFF_SECONDS": "0.01",
        "DESKPILOT_GRAPH_TIMEOUT_SECONDS": "1.0",
        "DESKPILOT_GRAPH_PAGE_SIZE": "25",
        **overrides,
    }


def sign_in(settings: Settings) -> GraphAuth:
    auth = GraphAuth(settings)
    auth.login_device_code(lambda message: None)
    return auth


def indexed(index_folder: Path) -> dict[str, str]:
    """source -> all chunk text of each document, read from the index's SQLite file like any SQLite tool."""
    with sqlite3.connect(index_folder / "meta.db") as conn:
        rows = conn.execute(
            "SELECT d.source, group_concat(c.text, ' ') FROM documents d "
            "LEFT JOIN chunks c ON c.document_id = d.id GROUP BY d.id"
        ).fetchall()
    return {source: text or "" for source, text in rows}


def assert_index_holds(index: DocumentIndex | Path, expected: dict[str, str]) -> None:
    """Exactly the expected documents (nothing lost, nothing extra, none twice), each at its last version."""
    folder = index.folder if isinstance(index, DocumentIndex) else index
    docs = indexed(folder)
    with sqlite3.connect(folder / "meta.db") as conn:
        assert (
            conn.execute("SELECT count(*), count(DISTINCT source) FROM documents").fetchone()
            == (len(docs),) * 2
        )
    missing, extra = expected.keys() - docs.keys(), docs.keys() - expected.keys()
    assert not missing and not extra, (
        f"{len(missing)} missing, e.g. {sorted(missing)[:3]}; {len(extra)} extra, e.g. {sorted(extra)[:3]}"
    )
    stale = [s for s, marker in expected.items() if marker not in docs[s]]
    assert not stale, f"{len(stale)} documents without their latest content, e.g. {stale[:3]}"
    if isinstance(index, DocumentIndex):
        assert index.verify() == []

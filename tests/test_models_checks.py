"""`deskpilot doctor`'s model checks: each profile named, with what is wrong and what to do; a real HTTP
server on 127.0.0.1 plays the organisation's inference server (its `GET /models` and its key check)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail
import pytest
from fakes import MemoryKeyring

from deskpilot.server.models.checks import model_checks
from deskpilot.server.models.registry import KEYRING_SERVICE
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration


class _Models(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        ok = self.headers.get("Authorization") == "Bearer right-key"
        body = json.dumps({"data": [{"id": "qwen2.5-7b"}]} if ok else {"error": "bad key"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def keys() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(keyring.backends.fail.Keyring())


def checks(home: Path, **models: Any) -> dict[str, tuple[bool, str]]:
    found = model_checks(load_settings(home=home, models=models))
    return {c.what: (c.ok, c.fix) for c in found}


def test_the_embedded_model_and_the_thread_rule_pass(app_home: Path) -> None:
    lines = checks(app_home)
    assert any(
        ok and "model profile 'embedded'" in what and "is a GGUF file" in what
        for what, (ok, _) in lines.items()
    )
    assert any("threads for a request now" in what and "free" in what for what in lines)


def test_a_missing_or_wrong_file_names_its_profile(app_home: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    lines = checks(
        app_home,
        gone={"backend": "llama.cpp", "path": str(tmp_path / "nope.gguf")},
        wrong={"backend": "llama.cpp", "path": str(text)},
    )
    failed = {what: fix for what, (ok, fix) in lines.items() if not ok}
    assert any(w.startswith("model profile 'gone'") and "cannot be read" in w for w in failed)
    assert any(w.startswith("model profile 'wrong'") and "is a GGUF file" in w for w in failed)
    assert all("deskpilot models pull" in fix for fix in failed.values())


def test_a_server_profile_is_checked_for_its_key_its_model_and_being_there(
    app_home: Path, server: str, keys: MemoryKeyring
) -> None:
    keys.set_password(KEYRING_SERVICE, "good", "right-key")
    keys.set_password(KEYRING_SERVICE, "bad", "wrong-key")
    profile = {"backend": "openai", "base_url": server}
    lines = checks(
        app_home,
        good={**profile, "model": "qwen2.5-7b", "api_key_name": "good"},
        badkey={**profile, "model": "qwen2.5-7b", "api_key_name": "bad"},
        nokey={**profile, "api_key_name": "absent"},
        othermodel={**profile, "model": "llama-3-70b", "api_key_name": "good"},
        down={"backend": "openai", "base_url": "http://127.0.0.1:9/v1"},
    )
    by_profile = {what.split("'")[1]: (ok, what, fix) for what, (ok, fix) in lines.items() if "'" in what}
    assert by_profile["good"][0] and "serves qwen2.5-7b" in by_profile["good"][1]
    assert not by_profile["badkey"][0] and "refused it (401)" in by_profile["badkey"][2]
    assert (
        not by_profile["nokey"][0]
        and "no API key in the keyring entry deskpilot-models/absent" in by_profile["nokey"][2]
    )
    assert not by_profile["othermodel"][0] and "the server lists qwen2.5-7b" in by_profile["othermodel"][2]
    assert not by_profile["down"][0] and "cannot be reached" in by_profile["down"][2]


def test_settings_that_do_not_load_are_one_failed_check(app_home: Path) -> None:
    settings = load_settings(home=app_home, routes={"summarize": {"use": ["ghost"]}})
    (only,) = list(model_checks(settings))
    assert not only.ok and "unknown model profile 'ghost'" in only.fix

"""`deskpilot models list | add | use | remove | pull`: config.toml edits that keep the admin's file, keys
only in the keyring, rollback by switching back, refusals that name the profile; `pull` from a Hub
stand-in on 127.0.0.1 through HF_ENDPOINT. (`models test` runs a real model: test_models_remote.py.)"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from click.testing import CliRunner, Result
from graph_helpers import VAULT_BACKEND, use_keyring
from hub_standin import HubStandIn

from deskpilot.server.cli import main
from deskpilot.server.models.registry import KEYRING_SERVICE, ModelRegistry
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

ADMIN_FILE = """# Set by IT, 2026-11: keep this comment
port = 8765

[routes.extract]
use = ["embedded"]  # extraction stays local
"""


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["models", *args], input=stdin, catch_exceptions=False)


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The keyring, as a file under tmp_path."""
    yield use_keyring(monkeypatch, VAULT_BACKEND, tmp_path)
    keyring.core.set_keyring(keyring.backends.fail.Keyring())


@pytest.fixture
def config(app_home: Path) -> Path:
    app_home.mkdir(parents=True, exist_ok=True)
    path = app_home / "config.toml"
    path.write_text(ADMIN_FILE)
    return path


def test_add_keeps_the_key_in_the_keyring_and_the_admins_file_as_it_was(config: Path, vault: Path) -> None:
    r = run(
        "add", "gpu", "--backend", "openai", "--base-url", "https://gpu.corp.example/v1", "--model", "qwen",
        "--api-key-stdin", "--price-in", "0.5", "--price-out", "1.5", "--context-length", "32768",
        stdin="sk-secret-123\n",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    text = config.read_text()
    assert text.startswith(ADMIN_FILE.split("\n[routes")[0])  # the comment and port line kept
    assert "# extraction stays local" in text
    assert "sk-secret-123" not in text
    gpu = tomllib.loads(text)["models"]["gpu"]
    assert gpu == {
        "backend": "openai",
        "base_url": "https://gpu.corp.example/v1",
        "model": "qwen",
        "api_key_name": "gpu",
        "context_length": 32768,
        "price_in_per_1k": 0.5,
        "price_out_per_1k": 1.5,
        "pii": "mask",
    }
    assert json.loads(vault.read_text()) == {f"{KEYRING_SERVICE}\x00gpu": "sk-secret-123"}
    listed = run("list").output
    assert "gpu" in listed and "remote" in listed and "embedded" in listed


def test_use_routes_a_task_and_switching_back_is_the_rollback(config: Path) -> None:
    run("add", "gpu", "--backend", "openai", "--base-url", "https://gpu.corp.example/v1")
    r = run("use", "summarize", "gpu")
    assert r.exit_code == 0 and "summarize: gpu → embedded (was: the default route)" in r.output
    settings = load_settings(home=config.parent)
    assert ModelRegistry(settings).routes["summarize"].use == ("gpu", "embedded")
    r = run("use", "summarize", "embedded")
    assert "(was: gpu → embedded)" in r.output
    assert ModelRegistry(load_settings(home=config.parent)).routes["summarize"].use == ("embedded",)
    assert "# extraction stays local" in config.read_text()


def test_refusals_name_the_profile_and_leave_the_file_alone(config: Path) -> None:
    r = CliRunner().invoke(main, ["models", "use", "summarize", "gpt-9"])
    assert r.exit_code != 0 and "unknown model profile 'gpt-9'" in r.output
    r = CliRunner().invoke(
        main, ["models", "add", "lan", "--backend", "openai", "--base-url", "http://10.0.0.5:8000/v1"]
    )
    assert r.exit_code != 0 and "models.lan: base_url 'http://10.0.0.5:8000/v1' is plain http" in r.output
    assert config.read_text() == ADMIN_FILE


def test_remove_refuses_a_profile_in_use_unless_forced_and_drops_its_key(config: Path, vault: Path) -> None:
    run(
        "add",
        "gpu",
        "--backend",
        "openai",
        "--base-url",
        "https://gpu.example/v1",
        "--api-key-stdin",
        stdin="k\n",
    )
    run("use", "summarize", "gpu")
    r = CliRunner().invoke(main, ["models", "remove", "gpu"])
    assert r.exit_code != 0 and "routes use 'gpu': summarize" in r.output
    assert run("remove", "gpu", "--force").exit_code == 0
    settings = load_settings(home=config.parent)
    assert "gpu" not in settings.models and settings.routes["summarize"].use == ("embedded",)
    assert json.loads(vault.read_text()) == {}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubStandIn]:
    with HubStandIn() as standin:
        monkeypatch.setenv("HF_ENDPOINT", standin.url)
        yield standin


def test_pull_downloads_a_pinned_file_checks_it_and_makes_it_a_profile(config: Path, hub: HubStandIn) -> None:
    content = b"GGUF" + bytes(range(256)) * 4096
    commit = hub.publish("acme/tiny-GGUF", {"tiny-q8_0.gguf": content})
    digest = hashlib.sha256(content).hexdigest()
    r = run("pull", "tiny", "acme/tiny-GGUF", "tiny-q8_0.gguf", "--revision", commit, "--sha256", digest)
    assert r.exit_code == 0, r.output
    profile = load_settings(home=config.parent).models["tiny"]
    assert profile.backend == "llama.cpp" and Path(profile.path or "").read_bytes() == content
    assert profile.sha256 == digest and profile.source == f"hf://acme/tiny-GGUF@{commit}/tiny-q8_0.gguf"
    assert Path(profile.path or "").is_relative_to(config.parent / "models")


def test_pull_refuses_a_corrupted_download_and_adds_no_profile(config: Path, hub: HubStandIn) -> None:
    content = b"GGUF" + bytes(1000)
    hub.publish("acme/tiny-GGUF", {"tiny.gguf": content})
    wrong = hashlib.sha256(b"something else").hexdigest()
    r = CliRunner().invoke(
        main,
        ["models", "pull", "tiny", "acme/tiny-GGUF", "tiny.gguf", "--revision", "main", "--sha256", wrong],
    )
    assert r.exit_code != 0 and "acme/tiny-GGUF" in r.output
    assert "tiny" not in load_settings(home=config.parent).models
    assert not any(p.is_file() and p.suffix == ".gguf" for p in (config.parent / "models").rglob("*"))

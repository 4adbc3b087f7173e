"""A remote profile on a real OpenAI-compatible server (`llama_cpp.server` serving the embedded model on
127.0.0.1) behind the fault proxy, the embedded model as its fallback: each injected fault before the first
token hands the request to the embedded model with nothing lost or repeated; a break after the first
token is an error, never a second answer; the API key from the keyring reaches the server as a bearer
token; `deskpilot models test` loads, answers, writes JSON and prints its speed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail
import pytest
from click.testing import CliRunner
from conftest import app_client, parse_sse
from fakes import MemoryKeyring
from litestar import Litestar
from litestar.testing import TestClient
from openai_server import Fault, FaultProxy, llama_server

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.server.app import create_app
from deskpilot.server.cli import main
from deskpilot.server.models.registry import KEYRING_SERVICE
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.model

TEXT = (
    "Ana from finance asked for the Q3 numbers by Friday. The board meets on Monday and needs the final "
    "figures, including the revised travel budget. Please send the spreadsheet to Ana and copy Ben."
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with llama_server() as base:
        yield base


@pytest.fixture(scope="module")
def proxy(upstream: str) -> Iterator[FaultProxy]:
    p = FaultProxy(upstream)
    yield p
    p.close()


@pytest.fixture(scope="module")
def vault() -> Iterator[None]:
    keyring.set_keyring(MemoryKeyring())
    keyring.set_password(KEYRING_SERVICE, "gpu-box", "sk-test-key")
    yield
    keyring.set_keyring(keyring.backends.fail.Keyring())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def remote(base: str, **extra: Any) -> dict[str, Any]:
    return {
        "backend": "openai",
        "base_url": f"{base}/v1",
        "model": "smollm2",
        "json_schema": "json_object",
        "repeat_penalty_field": "repeat_penalty",
        "context_length": 2048,
        "locality": "local",  # the same model either way; PII masking is test_models_privacy.py's
        "max_retries": 1,
        "read_timeout": 5.0,
        "api_key_name": "gpu-box",
        **extra,
    }


@pytest.fixture(scope="module")
def client(
    proxy: FaultProxy, vault: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient[Litestar]]:
    home = tmp_path_factory.mktemp("home")
    settings = load_settings(
        home=home,
        https=False,
        context_length=2048,
        models={"gpu-box": remote(proxy.url), "down": remote(f"http://127.0.0.1:{closed_port()}")},
        routes={"summarize": {"use": ["gpu-box", "embedded"]}, "rewrite": {"use": ["down", "embedded"]}},
        breaker_failures=1000,  # every test injects its own failures
        index_roots=[str(home)],
    )
    index = DocumentIndex(home / "index", embedder=HashEmbedder())
    with app_client(create_app(settings, index=index)) as c:
        yield c


def answer(c: TestClient[Litestar], path: str = "/v1/summarize", **body: Any) -> tuple[str, list[Any]]:
    r = c.post(path, json={"text": TEXT, "cache": False, **body})
    assert r.status_code == 200, r.text
    events = parse_sse(r.text)
    return "".join(d["text"] for e, d in events if e == "token"), events


@pytest.fixture(scope="module")
def local_answer(client: TestClient[Litestar]) -> str:
    text, events = answer(client, profile="embedded")
    assert text.strip() and events[-1][0] == "done"
    return text


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([Fault(status=500), Fault(status=503)], id="500-then-503"),
        pytest.param([Fault(status=429, retry_after="1"), Fault(status=429, retry_after="1")], id="429"),
        pytest.param([Fault(stall=7.0), Fault(stall=7.0)], id="stall-before-the-answer"),
        pytest.param([Fault(drop_after=0), Fault(drop_after=0)], id="dropped-before-the-first-token"),
    ],
)
def test_a_fault_before_the_first_token_hands_the_request_to_the_local_model(
    client: TestClient[Litestar], proxy: FaultProxy, local_answer: str, faults: list[Fault]
) -> None:
    proxy.faults[:] = faults
    text, events = answer(client)
    metas = [d for e, d in events if e == "meta"]
    assert [m["profile"] for m in metas] == ["gpu-box", "embedded"]
    assert "gpu-box" in metas[1]["fallback"]
    assert text == local_answer  # the local model's own answer: nothing lost, nothing repeated
    assert proxy.faults == []


def test_connection_refused_goes_on_at_once(client: TestClient[Litestar]) -> None:
    text, events = answer(client, "/v1/rewrite")
    assert text
    metas = [d for e, d in events if e == "meta"]
    assert [m["profile"] for m in metas] == ["down", "embedded"]
    assert "down" in metas[1]["fallback"] and events[-1][0] == "done"


def test_a_break_after_the_first_token_is_an_error_and_nothing_else_answers(
    client: TestClient[Litestar], proxy: FaultProxy
) -> None:
    proxy.faults[:] = [Fault(drop_after=4)]
    text, events = answer(client)
    assert [d["profile"] for e, d in events if e == "meta"] == ["gpu-box"]
    assert text and events[-1][0] == "error" and events[-1][1]["code"] == "backend_error"


def test_the_remote_answers_and_lineage_records_what_it_said_it_ran(
    client: TestClient[Litestar], proxy: FaultProxy
) -> None:
    proxy.faults.clear()
    text, events = answer(client)
    (meta,) = [d for e, d in events if e == "meta"]
    assert meta["profile"] == "gpu-box" and meta["backend"] == "openai" and text
    run = client.get(f"/v1/runs/{meta['runId']}").json()
    assert run["profile"] == "gpu-box" and run["servedModel"]
    assert proxy.headers[-1]["Authorization"] == "Bearer sk-test-key"  # from the keyring


@pytest.fixture
def fresh_upstream() -> Iterator[str]:
    """A server of its own: the fault tests above leave the module's with abandoned streams, after which
    llama_cpp.server has answered a new request with nothing."""
    with llama_server() as base:
        yield base


def test_models_test_loads_answers_writes_json_and_prints_its_speed(
    fresh_upstream: str, vault: None, app_home: Path
) -> None:
    upstream = fresh_upstream
    CliRunner().invoke(
        main,
        ["models", "add", "srv", "--backend", "openai", "--base-url", f"{upstream}/v1", "--model", "smollm2",
         "--json-schema", "json_object", "--context-length", "2048"],
        catch_exceptions=False,
    )  # fmt: skip
    r = CliRunner().invoke(main, ["models", "test", "srv", "--tokens", "32"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "tokens/s" in r.output and "JSON Schema output: ok" in r.output


def test_models_test_names_the_profile_when_the_server_is_unreachable(app_home: Path) -> None:
    base = f"http://127.0.0.1:{closed_port()}/v1"
    CliRunner().invoke(
        main, ["models", "add", "gone", "--backend", "openai", "--base-url", base, "--model", "m"]
    )
    r = CliRunner().invoke(main, ["models", "test", "gone"])
    assert r.exit_code != 0 and "model profile 'gone'" in r.output


def test_models_test_on_the_embedded_model_says_how_many_threads_it_chose(app_home: Path) -> None:
    r = CliRunner().invoke(main, ["models", "test", "embedded", "--tokens", "16"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "threads for this request:" in r.output and "free →" in r.output and "tokens/s" in r.output

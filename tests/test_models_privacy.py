"""Personal data and remote profiles: a real OpenAI-compatible HTTP server on 127.0.0.1 (the fault proxy in
echo mode: it streams the user message it received back, three characters a chunk, so placeholders arrive
split across tokens) records what reached it. No planted value reaches it; the user sees the originals;
lineage records categories and counts, never values; `block` keeps the request on this computer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import app_client, parse_sse
from litestar import Litestar
from litestar.testing import TestClient
from openai_server import Fault, FaultProxy

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

PLANTED = {
    "PERSON": ["Priya Raman", "Marco Bellini"],
    "EMAIL": ["priya.raman@northwind-traders.com", "marco@contoso.example"],
    "PHONE": ["+44 20 7946 0958"],
    "IBAN": ["DE89 3704 0044 0532 0130 00"],
    "CARD": ["4111 1111 1111 1111"],
    "ADDRESS": ["221 Baker Street, London NW1 6XE"],
}
EMAIL = {
    "from": "Priya Raman <priya.raman@northwind-traders.com>",
    "to": ["Marco Bellini <marco@contoso.example>"],
    "subject": "Refund for order 5521",
    "body": (
        "Hi Marco,\n\nPlease refund the card 4111 1111 1111 1111 to the account DE89 3704 0044 0532 0130 00. "
        "Ship the replacement to 221 Baker Street, London NW1 6XE, and call me on +44 20 7946 0958 if "
        "anything is unclear.\n\nThanks,\nPriya Raman"
    ),
}


@pytest.fixture
def echo() -> Iterator[FaultProxy]:
    proxy = FaultProxy("http://127.0.0.1:9")  # never forwards: every request is echoed
    proxy.sticky = Fault(echo=3)
    yield proxy
    proxy.close()


def make_app(home: Path, echo: FaultProxy, pii: str) -> Litestar:
    remote = {
        "backend": "openai",
        "base_url": f"{echo.url}/v1",
        "model": "echo",
        "locality": "remote",  # on loopback here, but treated as any server elsewhere
        "pii": pii,
    }
    settings = load_settings(
        home=home,
        https=False,
        models={"cloud": remote},
        routes={"summarize": {"use": ["cloud", "embedded"]}, "rewrite": {"use": ["cloud"]}},
    )
    local = ScriptedBackend(["A", " local", " summary", "."])
    return create_app(
        settings, backends={"embedded": local}, index=DocumentIndex(home / "i", embedder=HashEmbedder())
    )


@pytest.fixture
def masked(app_home: Path, echo: FaultProxy) -> Iterator[TestClient[Litestar]]:
    with app_client(make_app(app_home, echo, "mask")) as c:
        yield c


def sent(echo: FaultProxy) -> str:
    return msgspec.json.encode(echo.bodies).decode()


def test_no_planted_value_reaches_the_server_and_the_user_sees_the_originals(
    masked: TestClient[Litestar], echo: FaultProxy
) -> None:
    r = masked.post("/v1/summarize", json={"email": EMAIL})
    events = parse_sse(r.text)
    assert echo.bodies, "the request did not reach the remote server"
    for values in PLANTED.values():
        for value in values:
            assert value not in sent(echo)
            assert value.replace(" ", "") not in sent(echo).replace(" ", "")
    assert "<PERSON_1>" in sent(echo) and "<CARD_1>" in sent(echo)
    answer = "".join(d["text"] for e, d in events if e == "token")
    for values in PLANTED.values():
        for value in values:
            assert value in answer  # restored, though each placeholder came split across chunks
    assert "<PERSON_" not in answer and "<IBAN_" not in answer
    meta = next(d for e, d in events if e == "meta")
    assert meta["profile"] == "cloud" and meta["masked"]["PERSON"] == 3 and meta["masked"]["CARD"] == 1


def test_lineage_records_categories_counts_and_the_digest_of_what_was_sent(
    masked: TestClient[Litestar], echo: FaultProxy
) -> None:
    events = parse_sse(masked.post("/v1/summarize", json={"email": EMAIL}).text)
    run = masked.get(f"/v1/runs/{next(d for e, d in events if e == 'meta')['runId']}").json()
    pii = run["pii"]
    assert pii["policy"] == "mask"
    # Persons: "Priya Raman", "Marco Bellini" and the greeting's "Marco", each a value of its own.
    assert pii["masked"] == {"ADDRESS": 1, "CARD": 1, "EMAIL": 2, "IBAN": 1, "PERSON": 3, "PHONE": 1}
    messages = [[m["role"], m["content"]] for m in echo.bodies[-1]["messages"]]
    assert pii["sent_digest"] == "sha256:" + hashlib.sha256(msgspec.json.encode(messages)).hexdigest()
    for values in PLANTED.values():
        for value in values:
            # Not in the input (retain_inputs is off) nor the PII record. The output is restored text and
            # may hold values, as any local answer does; the echo answers with the whole prompt.
            assert value not in msgspec.json.encode({k: v for k, v in run.items() if k != "output"}).decode()


def test_block_keeps_the_request_here_and_goes_on_with_a_local_profile(
    app_home: Path, echo: FaultProxy
) -> None:
    with app_client(make_app(app_home, echo, "block")) as c:
        events = parse_sse(c.post("/v1/summarize", json={"email": EMAIL}).text)
        (meta,) = [d for e, d in events if e == "meta"]
        assert meta["profile"] == "embedded" and "policy is block" in meta["fallback"]
        assert "PERSON" in meta["fallback"] and "Priya" not in meta["fallback"]
        # Only the remote profile for this task: the request is refused, nothing sent.
        rewrite = parse_sse(
            c.post("/v1/rewrite", json={"text": "Call Priya Raman on +44 20 7946 0958."}).text
        )
        assert rewrite[-1][0] == "error" and rewrite[-1][1]["code"] == "pii_blocked"
    assert echo.bodies == []
    # Without personal data the same profile takes the request.
    with app_client(make_app(app_home, echo, "block")) as c:
        r = c.post("/v1/rewrite", json={"text": "Please make this sentence shorter and clearer."})
        assert next(d for e, d in parse_sse(r.text) if e == "meta")["profile"] == "cloud"
    assert len(echo.bodies) == 1


def test_allow_sends_as_is_and_says_so_in_lineage(app_home: Path, echo: FaultProxy) -> None:
    with app_client(make_app(app_home, echo, "allow")) as c:
        events = parse_sse(c.post("/v1/summarize", json={"email": EMAIL}).text)
        run = c.get(f"/v1/runs/{next(d for e, d in events if e == 'meta')['runId']}").json()
    assert "Priya Raman" in sent(echo)
    assert run["pii"]["policy"] == "allow" and "masked" not in run["pii"]


def test_a_local_profile_gets_the_text_unmasked_and_records_no_egress(
    app_home: Path, echo: FaultProxy
) -> None:
    with app_client(make_app(app_home, echo, "mask")) as c:
        events: list[Any] = parse_sse(
            c.post("/v1/summarize", json={"email": EMAIL, "profile": "embedded"}).text
        )
        run = c.get(f"/v1/runs/{next(d for e, d in events if e == 'meta')['runId']}").json()
    assert run["pii"] is None and echo.bodies == []

"""The Graph transport contract (`deskpilot.server.connectors.graph.GraphTransport`), run over every
transport against the Graph stand-in, a real HTTP server on 127.0.0.1 that speaks Graph's protocol and
injects Graph's faults (no patched client: the real protocol, on loopback).

What the sync and the action adapters rely on: collections come page by page until the last, each item
once; a missing item is `NotFound`; 429 waits for Retry-After, other 5xx back off exponentially with
jitter then give up with `GraphUnavailable`, timeouts and dropped connections are retried; an access
token revoked early is refreshed once; a write whose outcome is unknown is never sent again blindly
(`GraphAmbiguous`), while one Graph surely did not process (429, a connection that never opened) is;
an idempotent write is retried like a read; DELETE says whether it deleted.

Transports: `GraphClient` (O365's connection over requests). Another HTTP stack (httpx, say) joins
`TRANSPORTS` and must pass this suite unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from conftest import free_port
from graph_helpers import graph_settings, sign_in, vault  # noqa: F401 (a fixture)

from deskpilot.server.connectors.auth import GraphAuth
from deskpilot.server.connectors.graph import (
    GraphAmbiguous,
    GraphClient,
    GraphTransport,
    GraphUnavailable,
    NotFound,
    quote_id,
)
from deskpilot.server.connectors.models import User
from deskpilot.server.connectors.standin import Faults, StandIn, generate
from deskpilot.server.settings import Settings

pytestmark = pytest.mark.usefixtures("vault")

Make = Callable[[Settings], GraphTransport]


def _graph_client(settings: Settings) -> GraphTransport:
    return GraphClient(GraphAuth(settings), settings)


TRANSPORTS = [pytest.param(_graph_client, id="graphclient", marks=pytest.mark.integration)]


@pytest.fixture(params=TRANSPORTS)
def make_transport(request: pytest.FixtureRequest) -> Make:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(generate(seed=7, messages=60, files=0, events=0)) as graph:
        sign_in(graph_settings(graph))
        yield graph


@pytest.fixture
def connect(standin: StandIn, make_transport: Make) -> Iterator[Callable[..., GraphTransport]]:
    """A transport on the stand-in, with these settings overridden; closed after the test."""
    made: list[GraphTransport] = []

    def connect(**overrides: Any) -> GraphTransport:
        made.append(make_transport(graph_settings(standin, **overrides)))
        return made[-1]

    yield connect
    for transport in made:
        transport.close()


def graph_requests(standin: StandIn, method: str | None = None) -> list[float]:
    """When each request reached Graph (sign-in's requests to the authority are not Graph's)."""
    return [t for t, m, path, _, _ in standin.requests if path.startswith("/v1.0/") and method in (None, m)]


def first_message(standin: StandIn) -> str:
    return sorted(standin.tenant.messages)[0]


# -- reads ---------------------------------------------------------------------------------------------------


def test_pages_come_until_the_last_and_every_item_once(
    standin: StandIn, connect: Callable[..., GraphTransport]
) -> None:
    transport = connect(graph_page_size=25)
    pages = list(transport.pages("me/messages", params={"$select": "id"}))
    ids = [msgspec.json.decode(raw)["id"] for page in pages for raw in page.value]
    assert len(pages) == 3 and pages[-1].next_link is None
    assert sorted(ids) == sorted(standin.tenant.messages)


def test_a_missing_item_is_not_found(connect: Callable[..., GraphTransport]) -> None:
    with pytest.raises(NotFound):
        connect().get_item(f"me/messages/{quote_id('no-such-message')}", User)


def test_429_retry_after_is_honoured(standin: StandIn, connect: Callable[..., GraphTransport]) -> None:
    transport = connect(graph_backoff_seconds=0.01)
    standin.set_faults(Faults(rate=1.0, kinds={"throttle": 1.0}, retry_after=1, max_faults=2))
    assert transport.get_item("me", User).user_principal_name == "alex.wilber@contoso.example"
    times = graph_requests(standin)
    assert len(times) == 3 and transport.stats["retry:throttled"] == 2
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))  # not the 10 ms backoff


def test_5xx_back_off_exponentially_with_jitter_then_give_up(
    standin: StandIn, connect: Callable[..., GraphTransport]
) -> None:
    transport = connect(graph_backoff_seconds=0.1, graph_max_retries=4)
    standin.set_faults(Faults(rate=1.0, kinds={"unavailable": 1.0}))
    with pytest.raises(GraphUnavailable, match="after 5 attempts"):
        transport.get_item("me", User)
    times = graph_requests(standin)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 4
    for attempt, gap in enumerate(gaps):  # equal jitter: between half and all of 0.1 * 2**attempt
        ceiling = 0.1 * 2**attempt
        assert ceiling / 2 - 0.01 <= gap <= ceiling + 0.15, (attempt, gaps)


def test_timeouts_and_dropped_connections_are_retried(
    standin: StandIn, connect: Callable[..., GraphTransport]
) -> None:
    transport = connect(graph_timeout_seconds=0.4)
    standin.set_faults(
        Faults(rate=1.0, kinds={"slow": 1.0, "drop": 1.0}, slow_seconds=0.8, max_faults=4, seed=1)
    )
    assert transport.get_item("me", User).display_name == "Alex Wilber"
    assert transport.stats["retry:timeout"] + transport.stats["retry:connection"] == 4


def test_an_access_token_revoked_early_is_refreshed_once(
    standin: StandIn, connect: Callable[..., GraphTransport]
) -> None:
    transport = connect()
    assert transport.get_item("me", User).display_name == "Alex Wilber"
    standin.revoke_access_tokens()
    assert transport.get_item("me", User).display_name == "Alex Wilber"
    assert transport.stats["token_refreshes"] == 1 and standin.stats["refreshes"] == 1


# -- writes --------------------------------------------------------------------------------------------------


def test_a_post_whose_outcome_is_unknown_is_not_sent_again(
    standin: StandIn, connect: Callable[..., GraphTransport]
) -> None:
    transport = connect(graph_max_retries=2)
    reply = f"me/messages/{quote_id(first_message(standin))}/createReply"
    for kind in ("drop", "drop_after"):  # before and after Graph applied it: the client cannot tell
        standin.set_faults(Faults(rate=1.0, kinds={kind: 1.0}, methods=("POST",), max_faults=1))
        with pytest.raises(GraphAmbiguous):
            transport.post(reply, {"comment": kind})
    standin.set_faults(Faults(rate=1.0, kinds={"unavailable": 1.0}, methods=("POST",), max_faults=1))
    with pytest.raises(GraphAmbiguous) as raised:
        transport.post(reply, {"comment": "503"})
    assert raised.value.status == 503
    assert len(graph_requests(standin, "POST")) == 3  # none of them sent twice
    assert len(standin.tenant.effects()) == 1  # only drop_after's was applied
    assert transport.stats["ambiguous:connection"] == 2 and transport.stats["ambiguous:http_503"] == 1


def test_a_post_graph_did_not_process_is_sent_again(
    standin: StandIn, connect: Callable[..., GraphTransport]
) -> None:
    transport = connect(graph_max_retries=2)
    standin.set_faults(
        Faults(rate=1.0, kinds={"throttle": 1.0}, retry_after=0, methods=("POST",), max_faults=2)
    )
    draft = transport.post(f"me/messages/{quote_id(first_message(standin))}/createReply", {"comment": "ok"})
    assert draft["isDraft"] and transport.stats["retry:throttled"] == 2 and len(standin.tenant.effects()) == 1


def test_a_post_that_never_connected_is_retried_then_unavailable(
    standin: StandIn, make_transport: Make
) -> None:
    dead = graph_settings(standin, graph_base_url=f"http://127.0.0.1:{free_port()}/v1.0", graph_max_retries=2)
    transport = make_transport(dead)
    try:
        with pytest.raises(GraphUnavailable):
            transport.post("me/events", {"subject": "x"})
        assert transport.stats["retry:connection"] == 3
        assert not any(k.startswith("ambiguous") for k in transport.stats)
    finally:
        transport.close()


def test_an_idempotent_write_is_retried_like_a_read(
    standin: StandIn, connect: Callable[..., GraphTransport]
) -> None:
    transport = connect(graph_max_retries=2)
    standin.set_faults(Faults(rate=1.0, kinds={"drop_after": 1.0}, methods=("PUT",), max_faults=1))
    made = transport.put("me/drive/root:/Notes/a.txt:/content", b"hello", content_type="text/plain")
    assert made["name"] == "a.txt" and transport.stats["retry:connection"] == 1
    files = [e for e in standin.tenant.effects() if e["kind"] == "file"]
    assert [f["id"] for f in files] == [made["id"]]  # sent twice, one file (its folder was made on the way)


def test_delete_says_whether_it_deleted(standin: StandIn, connect: Callable[..., GraphTransport]) -> None:
    transport = connect(graph_max_retries=2)
    when = {"dateTime": "2026-11-30T10:00:00", "timeZone": "UTC"}
    first = transport.post("me/events", {"subject": "a", "start": when, "end": when})["id"]
    assert transport.delete(f"me/events/{quote_id(first)}") is True
    assert transport.delete(f"me/events/{quote_id(first)}") is False
    second = transport.post("me/events", {"subject": "b", "start": when, "end": when})["id"]
    standin.set_faults(Faults(rate=1.0, kinds={"drop_after": 1.0}, methods=("DELETE",), max_faults=1))
    assert transport.delete(f"me/events/{quote_id(second)}") is False  # deleted, answer lost, sent again: 404
    assert standin.tenant.effects() == [] and transport.stats["retry:connection"] == 1

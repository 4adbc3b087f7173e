"""The receivers of Deskpilot's actions, on 127.0.0.1, for the adapter tests: the Graph stand-in (drafts,
events, To Do tasks, OneDrive files) signed in through the real GraphClient, a webhook receiver that checks
signatures, and the fake adapter's in-memory receiver. `env` builds them for one test; adapters built
through `Env.adapters()` are closed with it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from fakes import FakeReceiver
from graph_helpers import graph_settings, sign_in
from webhook_receiver import WebhookReceiver

from deskpilot.server.actions.adapters import WebhookSecrets, build_adapters, default_graph_factory
from deskpilot.server.connectors.auth import GraphAuth
from deskpilot.server.connectors.graph import GraphClient
from deskpilot.server.connectors.standin import StandIn, generate
from deskpilot.server.settings import Settings

__all__ = ["SECRET", "Env", "env_fixture", "graph_posts"]

SECRET = "whsec-test-6f1c4c1e8d1b4b6e"


def graph_posts(standin: StandIn) -> int:
    """POSTs that reached Graph (sign-in's POSTs to the authority are not Graph's)."""
    return sum(1 for r in standin.requests if r[1] == "POST" and r[2].startswith("/v1.0/"))


@dataclass
class Env:
    """The receivers, signed in, and the adapters built over them."""

    standin: StandIn
    hook: WebhookReceiver
    settings: Settings
    secrets: WebhookSecrets
    fake: FakeReceiver = field(default_factory=FakeReceiver)  # the fake adapter's far side
    built: list[Any] = field(default_factory=list)

    def allow(self, *urls: str) -> None:
        """Allow webhooks to these receivers on 127.0.0.1 too (`webhook_allow`), in adapters built next."""
        origins = tuple(f"{u.split('/hooks', 1)[0]}/" for u in urls)
        self.settings = msgspec.structs.replace(
            self.settings, webhook_allow=(*self.settings.webhook_allow, *origins)
        )

    def adapters(self, factory: Callable[[], GraphClient] | None = None) -> dict[str, Any]:
        """A fresh set, as a new worker process would build it (closed at the end of the test)."""
        made = build_adapters(self.settings, factory or default_graph_factory(self.settings), self.secrets)
        self.built.extend(made.values())
        return made

    def built_from(self, made: dict[str, Any]) -> dict[str, Any]:
        self.built.extend(made.values())
        return made

    def close(self) -> None:
        for adapter in self.built:
            adapter.close()

    def client(self) -> GraphClient:
        return GraphClient(GraphAuth(self.settings), self.settings)

    @property
    def first_message(self) -> str:
        return next(iter(self.standin.tenant.messages))


@pytest.fixture(name="env")
def env_fixture() -> Iterator[Env]:
    """Import `env_fixture` to use the fixture `env` (the name keeps linters from seeing a redefinition)."""
    with (
        StandIn(generate(seed=7, messages=6, files=0, events=0)) as standin,
        WebhookReceiver(secret=SECRET.encode()) as hook,
    ):
        # The webhook receiver is allowed by its loopback address, as an admin would list a local one.
        settings = graph_settings(
            standin, graph_max_retries=2, webhook_allow=(hook.url.rsplit("/", 1)[0] + "/",)
        )
        sign_in(settings)
        secrets = WebhookSecrets()
        secrets.set("crm", SECRET)
        env = Env(standin, hook, settings, secrets)
        yield env
        env.close()

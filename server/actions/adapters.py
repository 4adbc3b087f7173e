"""The action adapters, one per kind, assembled in one place: `build_adapters(settings, graph, secrets)`.

Graph adapters (draft_reply, calendar_event, todo_task, file_document) take a factory that makes a
`GraphClient`; they call it once per execute or compensate and close the client afterwards, so the
executor's threads never share one. The webhook adapter reads signing secrets from the keyring through
`WebhookSecrets`. How each adapter keeps its effect to one per idempotency key is in its docstring and in
`_graph_base.py` (look up, create, look up again after an ambiguous answer) and `_webhook.py` (the
receiver dedupes on Idempotency-Key).

Errors: every adapter raises `TransientError` (retry later: 408, 429, 5xx, dropped connections and
timeouts, a write whose outcome is unknown and could not be found) or `PermanentError` (4xx, a missing
reply target or To Do list, a different file in the way, a missing webhook secret, a rejected signature).
"""

from __future__ import annotations

from deskpilot.server.actions._graph_base import APP_NAME, KEY_PROPERTY, GraphFactory
from deskpilot.server.actions._onedrive import FileDocumentAdapter
from deskpilot.server.actions._outlook import CalendarEventAdapter, DraftReplyAdapter
from deskpilot.server.actions._todo import TodoTaskAdapter
from deskpilot.server.actions._types import ActionAdapter
from deskpilot.server.actions._webhook import RETRACTED, WebhookAdapter, signature
from deskpilot.server.actions.destinations import Destinations
from deskpilot.server.actions.secrets import WebhookSecrets
from deskpilot.server.connectors.auth import GraphAuth
from deskpilot.server.connectors.graph import GraphClient
from deskpilot.server.settings import Settings

__all__ = [
    "APP_NAME",
    "KEY_PROPERTY",
    "RETRACTED",
    "CalendarEventAdapter",
    "DraftReplyAdapter",
    "FileDocumentAdapter",
    "GraphFactory",
    "TodoTaskAdapter",
    "WebhookAdapter",
    "WebhookSecrets",
    "build_adapters",
    "default_graph_factory",
    "signature",
]


def default_graph_factory(settings: Settings) -> GraphFactory:
    """A new GraphClient per call, on the signed-in account (the tokens are in the keyring)."""
    return lambda: GraphClient(GraphAuth(settings), settings)


def build_adapters(
    settings: Settings,
    graph_client_factory: GraphFactory | None = None,
    secrets: WebhookSecrets | None = None,
) -> dict[str, ActionAdapter]:
    """kind -> adapter, for every kind in ACTION_KINDS. Without a factory, each Graph call gets a new client
    on the signed-in account; without `secrets`, webhook secrets come from the OS keyring. Webhooks go
    only to the receivers in `webhook_allow` (`destinations.py`), with the Graph network timeout
    (`graph_timeout_seconds`)."""
    graph = graph_client_factory or default_graph_factory(settings)
    secrets = secrets or WebhookSecrets(allow_insecure=settings.allow_insecure_token_storage)
    return {
        "draft_reply": DraftReplyAdapter(graph),
        "calendar_event": CalendarEventAdapter(graph),
        "todo_task": TodoTaskAdapter(graph),
        "webhook": WebhookAdapter(
            secrets, destinations=Destinations.from_settings(settings), timeout=settings.graph_timeout_seconds
        ),
        "file_document": FileDocumentAdapter(graph),
    }

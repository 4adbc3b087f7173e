"""What the Graph adapters share: look up, then create; Graph's errors as Transient or Permanent.

Every Graph adapter marks what it creates with the action's idempotency key (an extended property, a
linkedResource's externalId, a path) and runs the same `execute`:

1. Look the key up. Found: an earlier attempt made the effect (perhaps one that died before the outbox
   recorded it); return it with `existed=True`.
2. Create it, marked.
3. If Graph's answer is lost or ambiguous (`GraphAmbiguous`: a dropped connection, a timeout or a 5xx
   after a POST left), look up once more. Found: this attempt made it. Not found: raise TransientError
   and do not create again in this call; a write may still be landing, and the next attempt, after the
   executor's backoff, looks up first anyway.

A lookup cannot close the window in which an earlier request is still in flight at Graph; only a
receiver-side key can (events have one: `transactionId`). The backoff between attempts makes that
window a matter of seconds, not of the time between a crash and a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

import msgspec

from deskpilot.server.actions._types import Effect, PermanentError, TransientError
from deskpilot.server.connectors.auth import AuthError
from deskpilot.server.connectors.graph import (
    Cancelled,
    GraphAmbiguous,
    GraphError,
    GraphTransport,
    GraphUnavailable,
    decode_item,
)

__all__ = ["APP_NAME", "KEY_PROPERTY", "GraphAdapter", "GraphFactory", "graph_errors", "marked", "raw_items"]

log = logging.getLogger("deskpilot.actions")
T = TypeVar("T")
GraphFactory = Callable[[], GraphTransport]

APP_NAME = "Deskpilot"
# A named String MAPI property in Deskpilot's own property set: the idempotency key on drafts and events.
# Fixed for good: a different GUID or name would make every earlier marker invisible to the lookup.
KEY_PROPERTY = "String {0b7c4a9e-5f1d-4c8e-9a3b-6d2e1f0a7c55} Name DeskpilotKey"


def marked(key: str) -> str:
    """The `$filter` Graph documents for finding items by a String extended property's value."""
    value = key.replace("'", "''")
    return f"singleValueExtendedProperties/Any(ep: ep/id eq '{KEY_PROPERTY}' and ep/value eq '{value}')"


def raw_items(
    graph: GraphTransport, url: str, kind: type[T], params: dict[str, Any] | None = None
) -> Iterator[T]:
    """Every item of a (paged) collection, decoded into a small Struct of what the adapter reads."""
    for page in graph.pages(url, params=params):
        for raw in page.value:
            yield decode_item(raw, kind)


@contextmanager
def graph_errors(what: str) -> Iterator[None]:
    """Graph's failures as the adapter contract's: TransientError when a later attempt may succeed."""
    try:
        yield
    except (GraphUnavailable, GraphAmbiguous, Cancelled) as exc:
        raise TransientError(f"{what}: {exc or type(exc).__name__}") from exc
    except AuthError as exc:
        raise PermanentError(f"{what}: {exc}") from exc
    except GraphError as exc:
        status = exc.status or 0
        if status in (408, 429) or status >= 500:
            raise TransientError(f"{what}: {exc}") from exc
        if status == 403:
            raise PermanentError(
                f"{what}: Microsoft 365 refused it ({exc}); the sign-in may lack the write permission "
                "(Mail.ReadWrite, Calendars.ReadWrite, Tasks.ReadWrite, Files.ReadWrite)"
            ) from exc
        raise PermanentError(f"{what}: {exc}") from exc  # other 4xx, and payloads that do not decode


class GraphAdapter:
    """Base of the Graph adapters: `prepare`, `lookup`, `create` and `remove` are theirs; the order of
    calls, the client's lifetime and the error mapping are here. The factory is called once per
    execute or compensate, and the client it returns is closed afterwards."""

    kind: ClassVar[str]

    def __init__(self, graph: GraphFactory) -> None:
        self._graph = graph

    def close(self) -> None:
        """Nothing held between calls: each execute or compensate closes its own client."""

    @contextmanager
    def _client(self, key: str) -> Iterator[GraphTransport]:
        with graph_errors(f"{self.kind} {key}"):
            client = self._graph()
            try:
                yield client
            finally:
                client.close()

    def execute(self, key: str, params: Any) -> Effect:
        with self._client(key) as graph:
            context = self.prepare(graph, params)
            found = self.lookup(graph, key, params, context)
            if found is not None:
                log.info("%s %s exists already (%s): not made again", self.kind, key, found.ref[:16])
                return msgspec.structs.replace(found, existed=True)
            try:
                return self.create(graph, key, params, context)
            except GraphAmbiguous as exc:
                found = self.lookup(graph, key, params, context)
                if found is not None:
                    log.info("%s %s: the answer was lost, the lookup found it", self.kind, key)
                    return found
                raise TransientError(
                    f"{self.kind} {key} may not have been made ({exc}); the next attempt looks it up first"
                ) from exc

    def compensate(self, key: str, params: Any, effect: Effect) -> None:
        with self._client(key) as graph:
            self.remove(graph, key, params, effect)

    # -- per adapter ------------------------------------------------------------------------------------

    def prepare(self, graph: GraphTransport, params: Any) -> Any:
        """What lookup and create both need (a list id, the file's bytes); None by default."""
        return None

    def lookup(self, graph: GraphTransport, key: str, params: Any, context: Any) -> Effect | None:
        raise NotImplementedError

    def create(self, graph: GraphTransport, key: str, params: Any, context: Any) -> Effect:
        raise NotImplementedError

    def remove(self, graph: GraphTransport, key: str, params: Any, effect: Effect) -> None:
        raise NotImplementedError

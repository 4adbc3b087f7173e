"""HTTP routes of the Microsoft 365 connector, for the task pane.

`POST /v1/sync` starts a background sync (202; 409 while one runs or when not signed in),
`GET /v1/sync/status` shows it, and `GET /v1/mail/conversation/{id}` returns a whole conversation in the
`EmailIn` shape that `/v1/summarize` takes as `thread`, so a thread summary can cover messages the
task pane cannot see.
"""

from __future__ import annotations

import anyio
import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException
from litestar.params import FromPath, JSONBody

from deskpilot.server.connectors.auth import AuthError, NotConfigured, NotSignedIn
from deskpilot.server.connectors.graph import GraphError, NotFound
from deskpilot.server.connectors.service import ConversationOut, GraphConnector, SyncStatus
from deskpilot.server.connectors.sync import SyncBusy

__all__ = ["SyncAPI", "SyncRequest"]


class SyncRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    full: bool = False  # forget the delta links and enumerate everything again


def _conflict(exc: Exception) -> ClientException:
    return ClientException(str(exc), status_code=409)


class SyncAPI(Controller):
    path = "/v1"
    tags = ("Microsoft 365",)

    @post(
        "/sync",
        status_code=202,
        summary="Sync mail, OneDrive, SharePoint libraries and calendar into the index (in the background)",
    )
    async def start_sync(
        self, graph: NamedDependency[GraphConnector], data: JSONBody[SyncRequest | None] = None
    ) -> SyncStatus:
        try:
            await anyio.to_thread.run_sync(lambda: graph.start(full=bool(data and data.full)))
        except (NotConfigured, NotSignedIn, SyncBusy) as exc:
            raise _conflict(exc) from exc
        return await anyio.to_thread.run_sync(graph.status)

    @get("/sync/status", summary="Sign-in, the running sync's progress, the last run, quarantined payloads")
    async def sync_status(self, graph: NamedDependency[GraphConnector]) -> SyncStatus:
        return await anyio.to_thread.run_sync(graph.status)

    @get("/mail/conversation/{conversation_id:str}", summary="Every message of a conversation, oldest first")
    async def conversation(
        self, conversation_id: FromPath[str], graph: NamedDependency[GraphConnector]
    ) -> ConversationOut:
        try:
            messages = await anyio.to_thread.run_sync(lambda: graph.conversation(conversation_id))
        except (NotConfigured, NotSignedIn) as exc:
            raise _conflict(exc) from exc
        except NotFound as exc:
            raise HTTPException(str(exc), status_code=404) from exc
        except (GraphError, AuthError) as exc:
            raise HTTPException(f"Microsoft 365 is not reachable: {exc}", status_code=502) from exc
        if not messages:
            raise HTTPException(f"no messages in conversation {conversation_id!r}", status_code=404)
        return ConversationOut(conversation_id=conversation_id, messages=messages)

"""Outlook adapters: a reply draft, a calendar event. Both are marked with the idempotency key in an
extended property (`KEY_PROPERTY`) and found again by Graph's `$filter` over it."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from deskpilot.server.actions._graph_base import KEY_PROPERTY, GraphAdapter, marked, raw_items
from deskpilot.server.actions._types import CalendarEventParams, DraftReplyParams, Effect, PermanentError
from deskpilot.server.connectors.graph import GraphTransport, NotFound, quote_id

__all__ = ["CalendarEventAdapter", "DraftReplyAdapter"]


class _Item(msgspec.Struct, rename="camel"):
    id: str
    web_link: str | None = None
    is_draft: bool | None = None
    parent_folder_id: str | None = None


def _marker(key: str) -> list[dict[str, str]]:
    return [{"id": KEY_PROPERTY, "value": key}]


def _effect(item: dict[str, Any] | _Item) -> Effect:
    if isinstance(item, _Item):
        return Effect(ref=item.id, detail={"webLink": item.web_link} if item.web_link else {})
    return Effect(ref=str(item["id"]), detail={"webLink": item["webLink"]} if item.get("webLink") else {})


class DraftReplyAdapter(GraphAdapter):
    """createReply (or createReplyAll) with the reply text as `comment`, so Outlook quotes the original
    below it as it does for a reply the user starts. The lookup searches Drafts only: a draft that was
    deleted sits in Deleted Items with its marker, and must not count as made."""

    kind: ClassVar[str] = "draft_reply"

    def lookup(
        self, graph: GraphTransport, key: str, params: DraftReplyParams, context: Any
    ) -> Effect | None:
        query = {"$filter": marked(key), "$select": "id,webLink"}
        for item in raw_items(graph, "me/mailFolders/drafts/messages", _Item, query):
            return _effect(item)
        return None

    def create(self, graph: GraphTransport, key: str, params: DraftReplyParams, context: Any) -> Effect:
        action = "createReplyAll" if params.reply_all else "createReply"
        try:
            draft = graph.post(
                f"me/messages/{quote_id(params.message_id)}/{action}",
                {"comment": params.body, "message": {"singleValueExtendedProperties": _marker(key)}},
            )
        except NotFound as exc:
            raise PermanentError(f"the message to reply to is gone ({params.message_id[:16]}...)") from exc
        return _effect(draft)

    def remove(self, graph: GraphTransport, key: str, params: DraftReplyParams, effect: Effect) -> None:
        url = f"me/messages/{quote_id(effect.ref)}"
        try:
            draft = graph.get_item(url, _Item, params={"$select": "id,isDraft,parentFolderId"})
        except NotFound:
            return
        if draft.is_draft is False:
            raise PermanentError("the reply has been sent; a sent message cannot be taken back")
        drafts = graph.get_item("me/mailFolders/drafts", _Item, params={"$select": "id"})
        if draft.parent_folder_id == drafts.id:  # elsewhere: the user (or we) deleted it already
            graph.delete(url)


class CalendarEventAdapter(GraphAdapter):
    """POST /me/events with `transactionId` = the key: Graph itself answers a repeated POST with the event
    the first made, so this POST may be retried like a GET. The extended property is the durable
    marker: Graph does not say how long it remembers a transactionId. Attendees get invitations (and
    cancellations, when the event is compensated)."""

    kind: ClassVar[str] = "calendar_event"

    def lookup(
        self, graph: GraphTransport, key: str, params: CalendarEventParams, context: Any
    ) -> Effect | None:
        for item in raw_items(graph, "me/events", _Item, {"$filter": marked(key), "$select": "id,webLink"}):
            return _effect(item)
        return None

    def create(self, graph: GraphTransport, key: str, params: CalendarEventParams, context: Any) -> Effect:
        event: dict[str, Any] = {
            "subject": params.subject,
            "body": {"contentType": "text", "content": params.body},
            "start": {"dateTime": params.start, "timeZone": params.time_zone},
            "end": {"dateTime": params.end, "timeZone": params.time_zone},
            "attendees": [{"emailAddress": {"address": a}, "type": "required"} for a in params.attendees],
            "transactionId": key,
            "singleValueExtendedProperties": _marker(key),
        }
        if params.location:
            event["location"] = {"displayName": params.location}
        return _effect(graph.post("me/events", event, idempotent=True))

    def remove(self, graph: GraphTransport, key: str, params: CalendarEventParams, effect: Effect) -> None:
        graph.delete(f"me/events/{quote_id(effect.ref)}")

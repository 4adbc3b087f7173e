"""What an action is to the rest of Deskpilot: its kinds, its parameters, and the adapter contract.

An adapter makes one kind of effect at a receiver (Outlook, Calendar, To Do, a webhook, OneDrive) and
can undo it. Both calls take the action's idempotency key and must be safe to repeat:

- `execute(key, params)` makes the effect at most once per key, even when an earlier attempt died after
  the receiver acted but before we recorded it. So it looks up before it creates (an extended property,
  Graph's `transactionId`, a file name), or relies on a marker the receiver keeps (the webhook's
  `Idempotency-Key`). It returns the receiver's reference to what exists now.
- `compensate(key, params, effect)` undoes it; an effect that is already gone is success.

Adapters raise `TransientError` for what a retry may fix (throttling, 5xx, a dropped connection) and
`PermanentError` for what it will not (4xx, a missing reply target). They never touch the outbox or
lineage: the executor records.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal, Protocol

import msgspec

__all__ = [
    "ACTION_KINDS",
    "PARAMS_TYPES",
    "ActionAdapter",
    "ActionError",
    "ActionKind",
    "CalendarEventParams",
    "DraftReplyParams",
    "Effect",
    "FileDocumentParams",
    "PermanentError",
    "TodoTaskParams",
    "TransientError",
    "WebhookParams",
    "idempotency_key",
]

ActionKind = Literal["draft_reply", "calendar_event", "todo_task", "webhook", "file_document"]
ACTION_KINDS: tuple[str, ...] = ("draft_reply", "calendar_event", "todo_task", "webhook", "file_document")


class ActionError(Exception):
    pass


class TransientError(ActionError):
    """The receiver may accept a retry (429, 5xx, timeout, dropped connection)."""


class PermanentError(ActionError):
    """A retry will not help (4xx, a target that does not exist, a rejected signature)."""


class _Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    pass


class DraftReplyParams(_Params):
    """A reply draft in Outlook's Drafts folder, to the message `message_id` (a Graph id)."""

    message_id: str
    body: str
    reply_all: bool = False


class CalendarEventParams(_Params):
    subject: str
    start: str  # ISO 8601 local date-time, e.g. "2026-11-30T10:00:00"
    end: str
    time_zone: str = "UTC"
    body: str = ""
    location: str = ""
    attendees: list[str] = []  # email addresses


class TodoTaskParams(_Params):
    title: str
    body: str = ""
    due: str | None = None  # ISO date "2026-12-01"
    list_name: str | None = None  # None: the user's default To Do list
    link_url: str | None = None  # e.g. the message the task came from (a linkedResource)


class WebhookParams(_Params):
    """A JSON POST with an HMAC-SHA256 signature. `secret` names a keyring entry, never the secret."""

    url: str
    payload: dict[str, Any]
    secret: str | None = None


class FileDocumentParams(_Params):
    """A file in a OneDrive folder (`folder` is a path under the drive root, e.g. "Finance/Invoices")."""

    folder: str
    name: str
    text: str | None = None
    content_b64: str | None = None
    content_type: str = "text/plain"


PARAMS_TYPES: dict[str, type[_Params]] = {
    "draft_reply": DraftReplyParams,
    "calendar_event": CalendarEventParams,
    "todo_task": TodoTaskParams,
    "webhook": WebhookParams,
    "file_document": FileDocumentParams,
}


class Effect(msgspec.Struct, kw_only=True, rename="camel"):
    """What exists at the receiver because of an action."""

    ref: str  # the receiver's id: message, event, task, drive item, webhook delivery
    detail: dict[str, Any] = {}  # e.g. webLink, the receiver's status code
    existed: bool = False  # found by the lookup: an earlier attempt had made it


class ActionAdapter(Protocol):
    kind: ClassVar[str]

    def execute(self, key: str, params: Any) -> Effect: ...

    def compensate(self, key: str, params: Any, effect: Effect) -> None: ...

    def close(self) -> None:
        """Release what the adapter holds (an HTTP client); called once, when the worker stops."""
        ...


def idempotency_key(kind: str, params: _Params | dict[str, Any], origin: str) -> str:
    """sha256 over the kind, the canonical JSON of the parameters and where the action came from (a
    workflow or run id): the same action proposed twice is one action, with one effect. A dict is
    validated into the kind's Struct first, so defaults and key order do not change the key."""
    if isinstance(params, dict):
        params = msgspec.convert(params, PARAMS_TYPES[kind])
    body = msgspec.json.encode(
        {"kind": kind, "params": msgspec.to_builtins(params), "origin": origin}, order="sorted"
    )
    return "dp-" + hashlib.sha256(body).hexdigest()[:40]

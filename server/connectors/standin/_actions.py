"""The Graph endpoints Deskpilot's actions use: the writes, and the lookups an action makes before it writes.

What matters for exactly-once is Graph's, and kept here:

- `POST /me/messages/{id}/createReply` (and `createReplyAll`) makes a draft in Drafts and answers 201 with
  it. The request's `message` may carry `singleValueExtendedProperties`: a client's marker on the draft,
  found again with `$filter=singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')`
  (Graph documents that exact form, for String properties) and shown with
  `$expand=singleValueExtendedProperties($filter=id eq '...')`. Graph refuses a `comment` together with a
  `message.body` (400). `DELETE /me/messages/{id}` is a soft delete: the draft moves to Deleted Items,
  where a lookup over all of /me/messages still finds it (a lookup scoped to Drafts does not).
- `POST /me/events` honours `transactionId`, Graph's own guard against "redundant POST operations in case
  of client retries": a second POST with the same transactionId answers with the event the first made,
  not a new one. Graph does not document how long it remembers a transactionId, which is why a client
  should also mark the event with an extended property and look that up.
- To Do: `GET /me/todo/lists`, `POST` and `GET /me/todo/lists/{id}/tasks`, `DELETE .../tasks/{id}`. A task
  is created with its `linkedResources` inline. v1.0 documents no `$filter` over linkedResources (the
  list-tasks page promises "some of the OData query parameters", and a lambda over a contained navigation
  property is not among the documented ones), so the stand-in refuses every `$filter` on tasks and serves
  `$expand=linkedResources`: a client finds its task by scanning the list's tasks with their links.
- OneDrive: `PUT /me/drive/root:/{path}:/content` is a simple upload (201 new, 200 replaced); missing folders
  on the path are created; `@microsoft.graph.conflictBehavior` is `replace` (the default), `fail` (409
  nameAlreadyExists) or `rename`. `GET /me/drive/root:/{path}` is 404 itemNotFound when nothing is there.
  `DELETE /me/drive/items/{id}` answers 204 (the item goes to the recycle bin; delta reports it deleted).

Deletes of what is not there answer 404, as Graph's do; clients treat that as "already gone".
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from deskpilot.server.connectors.standin._data import DriveFile, Event, Message, Tenant, TodoList
from deskpilot.server.connectors.standin._payloads import (
    event_json,
    extended_json,
    file_json,
    todo_list_json,
    todo_task_json,
)
from deskpilot.server.connectors.standin._replies import graph_error

__all__ = ["ActionEndpoints", "has_extended"]

_QUOTED = r"'((?:[^']|'')*)'"
_EXTENDED_FILTER = re.compile(
    rf"^singleValueExtendedProperties/any\((\w+):\s*\1/id eq {_QUOTED}\s+and\s+\1/value eq {_QUOTED}\)$",
    re.IGNORECASE,
)
_EXTENDED_EXPAND = re.compile(rf"^singleValueExtendedProperties\(\$filter=id eq {_QUOTED}\)$", re.IGNORECASE)
# The id forms of a named String property ("String {guid} Name X") and of a tagged one ("String 0x1234").
_EXTENDED_ID = re.compile(r"^String (\{[0-9a-f-]{36}\} Name \S.*|0x[0-9a-f]{1,4})$", re.IGNORECASE)
_BAD_NAME = re.compile(r'["*:<>?\\|]')
_NOT_FOUND = "The specified object was not found in the store."

_EVENT_FIELDS = {
    "subject", "body", "start", "end", "location", "attendees", "transactionId", "isAllDay", "showAs",
    "importance", "sensitivity", "categories", "isReminderOn", "reminderMinutesBeforeStart",
    "singleValueExtendedProperties", "isOnlineMeeting", "allowNewTimeProposals", "responseRequested",
}  # fmt: skip
_TASK_FIELDS = {
    "title", "body", "dueDateTime", "startDateTime", "reminderDateTime", "isReminderOn", "importance",
    "status", "categories", "linkedResources",
}  # fmt: skip
_LINK_FIELDS = {"webUrl", "applicationName", "displayName", "externalId"}


def has_extended(extended: dict[str, str], prop: str, value: str) -> bool:
    """Whether an item carries the extended property `prop` with `value` (ids compare without case)."""
    return any(k.lower() == prop.lower() and v == value for k, v in extended.items())


def _unquote(text: str) -> str:
    return text.replace("''", "'")


def _drive_path(parts: list[str]) -> list[str]:
    """Path-based addressing: `drive/root:/a/b.txt:/content` -> ["drive", "root:", "a/b.txt", "content"]."""
    if parts[:1] != ["drive"] or len(parts) < 2 or not parts[1].startswith("root:"):
        return parts
    rest = "/".join(parts[1:]).removeprefix("root:")
    content = rest.endswith(":/content")
    rest = rest.removesuffix(":/content").rstrip(":").strip("/")
    return ["drive", "root:", rest, *(["content"] if content else [])]


def _when(value: Any, name: str) -> datetime:
    """A dateTimeTimeZone ({"dateTime": "2026-11-30T10:00:00", "timeZone": "Europe/Berlin"}) in UTC."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise graph_error(400, "ErrorInvalidRequest", f"{name} needs a dateTime and a timeZone")
    text = re.sub(r"(\.\d{6})\d+", r"\1", value["dateTime"])  # Graph writes 7 fractional digits
    zone_name = value.get("timeZone") or "UTC"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        zone = UTC if zone_name.upper() in ("UTC", "Z") else ZoneInfo(zone_name)
    except ValueError as exc:
        raise graph_error(400, "ErrorInvalidRequest", f"{name}.dateTime is not a date-time") from exc
    except ZoneInfoNotFoundError as exc:
        raise graph_error(
            400, "TimeZoneNotSupportedException", f"A valid TimeZone value must be specified: {zone_name}"
        ) from exc
    return (when if when.tzinfo else when.replace(tzinfo=zone)).astimezone(UTC)


class ActionEndpoints:
    """Mixed into the stand-in's `_Graph`, which provides the state and the listing helpers below."""

    standin: Any
    tenant: Tenant
    query: dict[str, str]
    body: bytes
    content_type: str
    text_body: bool

    def _list(self, path: str, items: list[dict[str, Any]]) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def _folder(self, folder_id: str) -> Any:
        raise NotImplementedError

    def _message(self, message: Message) -> dict[str, Any]:
        raise NotImplementedError

    def _filtered_messages(self, folder_id: str | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    # -- query options ----------------------------------------------------------------------------------

    def extended_filter(self) -> tuple[str, str]:
        """(property id, value) of the one `$filter` over extended properties that Graph documents."""
        wanted = self.query.get("$filter", "")
        match = _EXTENDED_FILTER.match(wanted.strip())
        if match is None:
            raise graph_error(400, "ErrorInvalidUrlQueryFilter", f"the stand-in does not filter on {wanted}")
        return _unquote(match[2]), _unquote(match[3])

    def expanded_property(self) -> str | None:
        wanted = self.query.get("$expand")
        if not wanted:
            return None
        match = _EXTENDED_EXPAND.match(wanted.strip())
        if match is None:
            raise graph_error(400, "BadRequest", f"the stand-in does not expand {wanted}")
        return _unquote(match[1])

    def _json(self, allowed: set[str], type_name: str) -> dict[str, Any]:
        if self.body and not self.content_type.lower().startswith("application/json"):
            raise graph_error(415, "UnsupportedMediaType", f"expected JSON, got {self.content_type!r}")
        try:
            data = json.loads(self.body) if self.body else {}
        except ValueError as exc:
            raise graph_error(400, "BadRequest", "Unable to read JSON request payload.") from exc
        if not isinstance(data, dict):
            raise graph_error(400, "BadRequest", "The request payload is not a JSON object.")
        for key in data:
            if key not in allowed and not key.startswith("@"):
                raise graph_error(
                    400,
                    "RequestBodyRead",
                    f"The property '{key}' does not exist on type 'microsoft.graph.{type_name}'.",
                )
        return data

    @staticmethod
    def _extended_in(data: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for prop in data.get("singleValueExtendedProperties") or []:
            if not (isinstance(prop, dict) and isinstance(prop.get("value"), str)):
                raise graph_error(400, "ErrorInvalidProperty", "an extended property needs an id and a value")
            if not _EXTENDED_ID.match(str(prop.get("id", ""))):
                raise graph_error(400, "ErrorInvalidProperty", f"bad extended property id {prop.get('id')!r}")
            out[prop["id"]] = prop["value"]
        return out

    # -- routing ----------------------------------------------------------------------------------------

    def action_route(  # noqa: C901 - one flat table of endpoints reads better split than not
        self, method: str, parts: list[str], path: str
    ) -> tuple[int, Any, dict[str, str]] | None:
        """The answer for an action endpoint, or None when `parts` is not one (the reads handle it)."""
        t = self.tenant
        match method, _drive_path(parts):
            case "GET", ["mailFolders", folder_id, "messages"]:
                return self._list(path, self._filtered_messages(self._folder(folder_id).id))
            case "POST", ["messages", message_id, ("createReply" | "createReplyAll") as action]:
                return self._create_reply(message_id, reply_all=action == "createReplyAll")
            case "DELETE", ["messages", message_id]:
                if message_id not in t.messages:
                    raise graph_error(404, "ErrorItemNotFound", _NOT_FOUND)
                t.delete_message_as_graph(message_id)
                return 204, None, {}
            case "GET", ["events"]:
                prop, value = self.extended_filter() if "$filter" in self.query else ("", "")
                events = sorted(t.events.values(), key=lambda e: (e.start, e.id))
                found = [e for e in events if not prop or has_extended(e.extended, prop, value)]
                return self._list(path, [self._event(e) for e in found])
            case "POST", ["events"]:
                return self._create_event()
            case "DELETE", ["events", event_id]:
                if event_id not in t.events:
                    raise graph_error(404, "ErrorItemNotFound", _NOT_FOUND)
                t.delete_event(event_id)
                return 204, None, {}
            case "GET", ["todo", "lists"]:
                return self._list(path, [todo_list_json(todo) for todo in t.todo_lists.values()])
            case "GET", ["todo", "lists", list_id]:
                return 200, todo_list_json(self._todo_list(list_id)), {}
            case "GET", ["todo", "lists", list_id, "tasks"]:
                return self._list(path, self._tasks(self._todo_list(list_id)))
            case "POST", ["todo", "lists", list_id, "tasks"]:
                return self._create_task(self._todo_list(list_id))
            case "GET" | "DELETE", ["todo", "lists", list_id, "tasks", task_id]:
                task = t.tasks.get(task_id)
                if task is None or task.list_id != self._todo_list(list_id).id:
                    raise graph_error(404, "ErrorItemNotFound", _NOT_FOUND)
                if method == "DELETE":
                    t.delete_task(task_id)
                    return 204, None, {}
                return 200, todo_task_json(task, expand_linked=self._expand_linked()), {}
            case "GET", ["drive", "root:", item_path]:
                return 200, file_json(t, self._drive_item(item_path)), {}
            case "GET", ["drive", "root:", item_path, "content"]:
                item = self._drive_item(item_path)
                return 302, None, {"Location": f"{self.standin.url}/_download/{quote(item.id, safe='')}"}
            case "PUT", ["drive", "root:", item_path, "content"]:
                return self._upload(item_path)
            case "DELETE", ["drive", "items", item_id]:
                if item_id not in t.files:
                    raise graph_error(404, "itemNotFound", "The resource could not be found.")
                t.delete_file(item_id)
                return 204, None, {}
        return None

    # -- mail -------------------------------------------------------------------------------------------

    def _create_reply(self, message_id: str, *, reply_all: bool) -> tuple[int, Any, dict[str, str]]:
        data = self._json({"comment", "message"}, "createReply")
        message = data.get("message") or {}
        if not isinstance(message, dict):
            raise graph_error(400, "BadRequest", "message must be an object")
        comment = data.get("comment") or ""
        body = message.get("body") or {}
        if comment and body:
            raise graph_error(400, "ErrorInvalidRequest", "Specify a comment or a message.body, not both.")
        if message_id not in self.tenant.messages:
            raise graph_error(404, "ErrorItemNotFound", _NOT_FOUND)
        draft = self.tenant.create_reply(
            message_id,
            comment or str(body.get("content", "")),
            reply_all=reply_all,
            extended=self._extended_in(message),
            now=datetime.now(UTC).replace(microsecond=0),
        )
        return 201, self._message(draft), {}

    # -- calendar ---------------------------------------------------------------------------------------

    def _event(self, event: Event) -> dict[str, Any]:
        out = event_json(event, text_body=self.text_body)
        wanted = self.expanded_property()
        if wanted is not None:
            out["singleValueExtendedProperties"] = extended_json(event.extended, wanted)
        return out

    def _create_event(self) -> tuple[int, Any, dict[str, str]]:
        data = self._json(_EVENT_FIELDS, "event")
        transaction_id = str(data.get("transactionId") or "")
        if transaction_id:  # Graph's dedupe: the event an earlier POST with this transactionId made
            for event in self.tenant.events.values():
                if event.transaction_id == transaction_id:
                    return 201, self._event(event), {}
        start, end = _when(data.get("start"), "start"), _when(data.get("end"), "end")
        if end < start:
            raise graph_error(400, "ErrorInvalidRequest", "The end of an event cannot be before its start.")
        body = data.get("body") or {}
        text = str(body.get("content", ""))
        if str(body.get("contentType", "text")).lower() == "html":
            text = re.sub(r"<[^>]+>", "", text)
        attendees = []
        for attendee in data.get("attendees") or []:
            address = (attendee.get("emailAddress") or {}).get("address")
            if not address:
                raise graph_error(400, "ErrorInvalidRecipients", "an attendee needs an email address")
            attendees.append((attendee["emailAddress"].get("name") or address, address))
        event = self.tenant.create_event(
            str(data.get("subject") or ""),
            text,
            start,
            int((end - start) / timedelta(minutes=1)),
            location=str((data.get("location") or {}).get("displayName", "")),
            attendees=attendees,
            transaction_id=transaction_id,
            extended=self._extended_in(data),
        )
        return 201, self._event(event), {}

    # -- To Do ------------------------------------------------------------------------------------------

    def _todo_list(self, list_id: str) -> TodoList:
        todo = self.tenant.todo_lists.get(list_id)
        if todo is None:
            raise graph_error(404, "ErrorItemNotFound", _NOT_FOUND)
        return todo

    def _expand_linked(self) -> bool:
        wanted = self.query.get("$expand", "")
        if wanted and wanted.strip() != "linkedResources":
            raise graph_error(400, "BadRequest", f"the stand-in does not expand {wanted}")
        return bool(wanted)

    def _tasks(self, todo: TodoList) -> list[dict[str, Any]]:
        if "$filter" in self.query:  # see the module docstring: none that finds a task by its link
            raise graph_error(400, "BadRequest", "the stand-in serves no $filter on To Do tasks")
        expand = self._expand_linked()
        tasks = sorted((t for t in self.tenant.tasks.values() if t.list_id == todo.id), key=lambda t: t.id)
        return [todo_task_json(task, expand_linked=expand) for task in tasks]

    def _create_task(self, todo: TodoList) -> tuple[int, Any, dict[str, str]]:
        data = self._json(_TASK_FIELDS, "todoTask")
        links = []
        for link in data.get("linkedResources") or []:
            unknown = set(link) - _LINK_FIELDS
            if unknown:
                raise graph_error(400, "RequestBodyRead", f"not on microsoft.graph.linkedResource: {unknown}")
            links.append({k: str(v) for k, v in link.items()})
        due = data.get("dueDateTime")
        if due is not None:
            _when(due, "dueDateTime")  # validated; kept as the client wrote it, as Graph does
        task = self.tenant.add_task(
            todo.id,
            str(data.get("title") or ""),
            str((data.get("body") or {}).get("content", "")),
            due=due["dateTime"] if due else None,
            due_zone=(due or {}).get("timeZone") or "UTC",
            linked=links,
        )
        return 201, todo_task_json(task, expand_linked=True), {}

    # -- OneDrive ---------------------------------------------------------------------------------------

    def _drive_item(self, item_path: str) -> DriveFile:
        item = self.tenant.drive_item_at(item_path) if item_path else None
        if item is None:
            raise graph_error(404, "itemNotFound", "The resource could not be found.")
        return item

    def _upload(self, item_path: str) -> tuple[int, Any, dict[str, str]]:
        conflict = self.query.get("@microsoft.graph.conflictBehavior", "replace")
        if conflict not in ("fail", "replace", "rename"):
            raise graph_error(400, "invalidRequest", f"invalid conflictBehavior {conflict!r}")
        names = [p for p in item_path.split("/") if p]
        if not names or any(_BAD_NAME.search(n) or n.strip() != n or n in (".", "..") for n in names):
            raise graph_error(400, "invalidRequest", f"invalid path {item_path!r}")
        try:
            item, new = self.tenant.upload(item_path, self.body, conflict=conflict)
        except FileExistsError as exc:
            raise graph_error(
                409, "nameAlreadyExists", f"The specified item name already exists. Name: {exc}"
            ) from exc
        return (201 if new else 200), file_json(self.tenant, item), {}

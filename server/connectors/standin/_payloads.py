"""Graph JSON for the stand-in's items: the property names and types of Graph v1.0's message, mailFolder,
driveItem, event, todoTaskList, todoTask, linkedResource and user entity types (tests check them against
Microsoft's CSDL metadata)."""

from __future__ import annotations

import base64
import hashlib
import html
from datetime import UTC, datetime, timedelta
from typing import Any

from deskpilot.server.connectors.models import time_zone as time_zone_named
from deskpilot.server.connectors.standin._data import (
    DRIVE_ROOT,
    USER,
    DriveFile,
    Event,
    Folder,
    Library,
    Message,
    Site,
    Tenant,
    TodoList,
    TodoTask,
    iso,
)

__all__ = [
    "event_json",
    "extended_json",
    "file_json",
    "folder_json",
    "library_json",
    "message_json",
    "site_json",
    "todo_list_json",
    "todo_task_json",
    "user_json",
]

_MIME = {
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "png": "image/png",
}
DRIVE_ID = "b!standinDriveId0123456789"


def _recipient(person: tuple[str, str]) -> dict[str, Any]:
    name, local = person  # a local part at contoso.example, or a whole address (attendees a client sent)
    return {"emailAddress": {"name": name, "address": local if "@" in local else f"{local}@contoso.example"}}


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n"))
    head = '<head><meta http-equiv="Content-Type" content="text/html"></head>'
    return f"<html>{head}<body>{paragraphs}</body></html>"


def user_json() -> dict[str, Any]:
    return dict(USER)


def folder_json(tenant: Tenant, folder: Folder) -> dict[str, Any]:
    children = [f for f in tenant.folders.values() if f.parent_id == folder.id]
    messages = [m for m in tenant.messages.values() if m.folder_id == folder.id]
    return {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": len(children),
        "unreadItemCount": sum(not m.is_read for m in messages),
        "totalItemCount": len(messages),
        "isHidden": folder.hidden,
    }


def message_json(message: Message, *, text_body: bool) -> dict[str, Any]:
    body = message.body if text_body else _html(message.body)
    return {
        "@odata.etag": f'W/"{message.version}"',
        "id": message.id,
        "createdDateTime": iso(message.received),
        "lastModifiedDateTime": iso(message.modified),
        "changeKey": f"CQAAABYAAAB{message.version:04d}",
        "categories": [],
        "receivedDateTime": iso(message.received),
        "sentDateTime": iso(message.received - timedelta(seconds=3)),
        "hasAttachments": False,
        "internetMessageId": f"<{hashlib.sha1(message.id.encode()).hexdigest()[:16]}@contoso.example>",
        "subject": message.subject,
        "bodyPreview": message.body[:255],
        "importance": "normal",
        "parentFolderId": message.folder_id,
        "conversationId": message.conversation_id,
        "isRead": message.is_read,
        "isDraft": message.is_draft,
        "webLink": f"https://outlook.office365.com/owa/?ItemID={message.id}&exvsurl=1&viewmodel=ReadMessageItem",
        "body": {"contentType": "text" if text_body else "html", "content": body},
        "sender": _recipient(message.sender),
        "from": _recipient(message.sender),
        "toRecipients": [_recipient(p) for p in message.to],
        "ccRecipients": [_recipient(p) for p in message.cc],
        "flag": {"flagStatus": "notFlagged"},
    }


def file_json(tenant: Tenant, item: DriveFile, *, with_path: bool = True) -> dict[str, Any]:
    """`with_path=False`: as delta responses render items, without `parentReference.path`."""
    out: dict[str, Any] = {
        "@odata.etag": f'"{{{item.id[8:16]}}},{item.version}"',
        "id": item.id,
        "name": item.name,
        "eTag": f'"{{{item.id[8:16]}}},{item.version}"',
        "cTag": f'"c:{{{item.id[8:16]}}},{item.version}"',
        "createdDateTime": iso(item.modified),
        "lastModifiedDateTime": iso(item.modified),
        "webUrl": _web_url(tenant, item),
        "size": len(item.content),
        "parentReference": {
            "driveId": item.library or DRIVE_ID,
            "driveType": "documentLibrary" if item.library else "business",
            "id": item.parent_id,
            **({"path": tenant.path_of(item)} if with_path else {}),
        },
    }
    if item.is_folder:
        out["folder"] = {"childCount": sum(f.parent_id == item.id for f in tenant.files.values())}
    else:
        digest = base64.b64encode(hashlib.sha1(item.content).digest()).decode()
        out["file"] = {
            "mimeType": _MIME.get(item.name.rsplit(".", 1)[-1], "application/octet-stream"),
            "hashes": {"sha1Hash": digest},
        }
    if item.id == DRIVE_ROOT:
        out["root"] = {}
    return out


def _web_url(tenant: Tenant, item: DriveFile) -> str:
    library = tenant.libraries.get(item.library)
    if library is None:
        return f"https://contoso-my.sharepoint.com/personal/alex/Documents/{item.name}"
    site = tenant.sites[library.site_id]
    return f"https://contoso.sharepoint.com/sites/{site.name}/{library.name.replace(' ', '%20')}/{item.name}"


def site_json(site: Site) -> dict[str, Any]:
    """A site as `/me/followedSites` and `/sites/{id}` render it."""
    return {
        "id": site.id,
        "name": site.name,
        "displayName": site.display_name,
        "webUrl": f"https://contoso.sharepoint.com/sites/{site.name}",
        "createdDateTime": "2024-01-15T09:00:00Z",
        "lastModifiedDateTime": "2026-11-02T10:00:00Z",
    }


def library_json(site: Site, library: Library) -> dict[str, Any]:
    """A document library as `/sites/{id}/drives` renders it (a drive of type documentLibrary)."""
    return {
        "id": library.id,
        "name": library.name,
        "description": "",
        "driveType": "documentLibrary",
        "webUrl": f"https://contoso.sharepoint.com/sites/{site.name}/{library.name.replace(' ', '%20')}",
        "createdDateTime": "2024-01-15T09:00:00Z",
        "lastModifiedDateTime": "2026-11-02T10:00:00Z",
    }


def deleted_file_json(item_id: str) -> dict[str, Any]:
    return {"id": item_id, "deleted": {"state": "deleted"}}


def _local(moment: datetime, time_zone: str | None) -> tuple[str, str]:
    """A moment as Graph's dateTimeTimeZone renders it: local time and the zone's name as asked (Windows
    or IANA); UTC when no zone was asked for or the name is not known."""
    zone = time_zone_named(time_zone) if time_zone else None
    if zone is None or time_zone is None:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "UTC"
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S.0000000"), time_zone


def event_json(event: Event, *, text_body: bool, time_zone: str | None = None) -> dict[str, Any]:
    """`time_zone`: what `Prefer: outlook.timezone` asked for."""
    end = event.start + timedelta(minutes=event.minutes)
    start_local, zone = _local(event.start, time_zone)
    end_local, _ = _local(end, time_zone)
    return {
        "@odata.etag": f'W/"{event.version}"',
        "id": event.id,
        "createdDateTime": iso(event.modified),
        "lastModifiedDateTime": iso(event.modified),
        "changeKey": f"DwAAABYAAAB{event.version:04d}",
        "categories": [],
        "iCalUId": "040000008200E00074C5B7101A82E008" + hashlib.sha1(event.id.encode()).hexdigest()[:32],
        "subject": event.subject,
        "bodyPreview": event.body[:255],
        "body": {
            "contentType": "text" if text_body else "html",
            "content": event.body if text_body else _html(event.body),
        },
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": False,
        "isCancelled": False,
        "isOrganizer": event.is_organizer,
        "showAs": "busy",
        "type": "singleInstance",
        "webLink": f"https://outlook.office365.com/owa/?itemid={event.id}&exvsurl=1&path=/calendar/item",
        "start": {"dateTime": start_local, "timeZone": zone},
        "end": {"dateTime": end_local, "timeZone": zone},
        "location": {"displayName": event.location, "locationType": "default"},
        "organizer": _recipient(event.organizer),
        "attendees": [
            {
                "type": "required",
                "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                **_recipient(p),
            }
            for p in event.attendees
        ],
        # Graph returns transactionId only on events whose creator set one.
        **({"transactionId": event.transaction_id} if event.transaction_id else {}),
    }


def extended_json(extended: dict[str, str], wanted_id: str) -> list[dict[str, Any]]:
    """`$expand=singleValueExtendedProperties($filter=id eq '...')`: the one property asked for, if set
    (Graph compares property ids without regard to case)."""
    return [{"id": k, "value": v} for k, v in extended.items() if k.lower() == wanted_id.lower()]


def todo_list_json(todo: TodoList) -> dict[str, Any]:
    return {
        "@odata.etag": f'W/"{todo.id[-12:]}"',
        "id": todo.id,
        "displayName": todo.display_name,
        "isOwner": True,
        "isShared": False,
        "wellknownListName": todo.wellknown,
    }


def todo_task_json(task: TodoTask, *, expand_linked: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.etag": f'W/"{task.id[-12:]}"',
        "id": task.id,
        "importance": "normal",
        "isReminderOn": False,
        "status": "notStarted",
        "title": task.title,
        "createdDateTime": iso(task.created),
        "lastModifiedDateTime": iso(task.created),
        "bodyLastModifiedDateTime": iso(task.created),
        "hasAttachments": False,
        "categories": [],
        "body": {"content": task.body, "contentType": "text"},
    }
    if task.due:
        out["dueDateTime"] = {"dateTime": task.due, "timeZone": task.due_zone}
    if expand_linked:
        out["linkedResources"] = [dict(resource) for resource in task.linked]
    return out

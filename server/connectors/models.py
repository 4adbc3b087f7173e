"""Graph payloads as msgspec Structs, and what the index and the task pane get from them.

Every item Graph sends is decoded into one of these before it is used. Unknown properties are ignored
(Graph adds properties over time); a payload whose known properties have the wrong shape (a date that
is not a date, a list that is a string, no id) fails to decode: that is schema drift, and the sync
quarantines the item instead of guessing. Only the properties Deskpilot uses are declared.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from tzlocal.windows_tz import win_tz

from deskpilot.indexes import DocumentInput, PageText, html_to_text
from deskpilot.server.core.wire import EmailIn

__all__ = [
    "Drive",
    "DriveItem",
    "Event",
    "MailFolder",
    "Message",
    "Page",
    "Site",
    "User",
    "drive_document",
    "email_in",
    "event_document",
    "message_document",
    "time_zone",
]


class _Graph(msgspec.Struct, rename="camel", kw_only=True):
    pass


class Page(msgspec.Struct, kw_only=True):
    """One page of a collection or delta response; items stay raw until each is validated alone."""

    value: list[msgspec.Raw] = []
    next_link: str | None = msgspec.field(default=None, name="@odata.nextLink")
    delta_link: str | None = msgspec.field(default=None, name="@odata.deltaLink")


class Removed(_Graph):
    reason: str = "deleted"


class EmailAddress(_Graph):
    name: str | None = None
    address: str | None = None

    def text(self) -> str:
        if self.name and self.address and self.name != self.address:
            return f"{self.name} <{self.address}>"
        return self.address or self.name or ""


class Recipient(_Graph):
    email_address: EmailAddress | None = None

    def text(self) -> str:
        return self.email_address.text() if self.email_address else ""


class ItemBody(_Graph):
    content_type: str = "text"
    content: str | None = None

    def text(self) -> str:
        if not self.content:
            return ""
        return html_to_text(self.content)[1] if self.content_type.lower() == "html" else self.content


class MailFolder(_Graph):
    id: str
    odata_type: str | None = msgspec.field(default=None, name="@odata.type")
    display_name: str = ""
    parent_folder_id: str | None = None
    child_folder_count: int = 0
    total_item_count: int | None = None

    @property
    def is_search_folder(self) -> bool:
        """A saved search (`mailSearchFolder`, listed among the folders, as in Microsoft's list-mailFolders
        example): its messages live in real folders and are synced there, so it is not a folder to sync."""
        return (self.odata_type or "").lower() == "#microsoft.graph.mailsearchfolder"


class Site(_Graph):
    """A SharePoint site (`/me/followedSites`, `/sites/{id}`); its document libraries are its drives."""

    id: str
    name: str | None = None
    display_name: str | None = None
    web_url: str | None = None


class Drive(_Graph):
    """A drive of a site (`/sites/{id}/drives`): a document library when `drive_type` says so."""

    id: str
    name: str | None = None
    drive_type: str | None = None
    web_url: str | None = None


class User(_Graph):
    id: str
    display_name: str | None = None
    user_principal_name: str | None = None
    mail: str | None = None


class Message(_Graph):
    id: str
    removed: Removed | None = msgspec.field(default=None, name="@removed")
    subject: str | None = None
    body: ItemBody | None = None
    body_preview: str | None = None
    sender: Recipient | None = msgspec.field(default=None, name="from")
    to_recipients: list[Recipient] = []
    cc_recipients: list[Recipient] = []
    received_date_time: datetime | None = None
    sent_date_time: datetime | None = None
    conversation_id: str | None = None
    parent_folder_id: str | None = None
    internet_message_id: str | None = None
    web_link: str | None = None
    change_key: str | None = None


class ItemReference(_Graph):
    id: str | None = None
    drive_id: str | None = None
    path: str | None = None


class FileFacet(_Graph):
    mime_type: str | None = None


class Deleted(_Graph):
    state: str | None = None


class DriveItem(_Graph):
    id: str
    name: str | None = None
    size: int | None = None
    e_tag: str | None = None
    c_tag: str | None = None
    web_url: str | None = None
    last_modified_date_time: datetime | None = None
    parent_reference: ItemReference | None = None
    file: FileFacet | None = None
    folder: dict[str, Any] | None = None
    root: dict[str, Any] | None = None
    deleted: Deleted | None = None
    removed: Removed | None = msgspec.field(default=None, name="@removed")


class DateTimeTimeZone(_Graph):
    date_time: str
    time_zone: str | None = None

    def parse(self) -> datetime | None:
        """The moment, in UTC. Graph writes 7 fractional digits ("2025-03-03T09:00:00.0000000") and the
        zone apart, by its Windows name ("Pacific Standard Time") when asked for a mailbox's zone with
        `Prefer: outlook.timezone`, or an IANA name. None when the text or the zone is not understood:
        an unknown moment, rather than a wrong one."""
        text = self.date_time.rstrip("Z")
        head, _, fraction = text.partition(".")
        try:
            value = datetime.fromisoformat(head + (f".{fraction[:6]}" if fraction else ""))
        except ValueError:
            return None
        if value.tzinfo is None:
            zone = time_zone(self.time_zone or "UTC")
            if zone is None:
                return None
            value = value.replace(tzinfo=zone)
        return value.astimezone(UTC)


def time_zone(name: str) -> ZoneInfo | None:
    """A zone by its Windows name (Exchange's) or its IANA name. Windows names map through CLDR's
    windowsZones table as tzlocal ships it (`tzlocal.windows_tz.win_tz`, regenerated from CLDR with each
    tzlocal release; tzlocal is already here for O365); zone rules come from the system's tz database
    or the `tzdata` package (Windows has no system one)."""
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(win_tz.get(name, name))
    except (ZoneInfoNotFoundError, ValueError):
        return None


class Location(_Graph):
    display_name: str | None = None


class Attendee(_Graph):
    email_address: EmailAddress | None = None
    type: str | None = None


class Event(_Graph):
    id: str
    removed: Removed | None = msgspec.field(default=None, name="@removed")
    subject: str | None = None
    body: ItemBody | None = None
    start: DateTimeTimeZone | None = None
    end: DateTimeTimeZone | None = None
    location: Location | None = None
    organizer: Recipient | None = None
    attendees: list[Attendee] = []
    is_all_day: bool | None = None
    is_cancelled: bool | None = None
    web_link: str | None = None
    last_modified_date_time: datetime | None = None


# -- into the index ---------------------------------------------------------------------------------------


def _headers(lines: list[tuple[str, str | None]]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in lines if value)


def message_document(message: Message, folder: str = "") -> DocumentInput:
    """The message as the index keeps it: its headers, then its text (like an .eml file)."""
    to = ", ".join(r.text() for r in message.to_recipients)
    cc = ", ".join(r.text() for r in message.cc_recipients)
    date = message.received_date_time or message.sent_date_time
    head = _headers(
        [
            ("Subject", message.subject),
            ("From", message.sender.text() if message.sender else None),
            ("To", to),
            ("Cc", cc),
            ("Date", date.isoformat() if date else None),
            ("Folder", folder),
        ]
    )
    body = message.body.text() if message.body else (message.body_preview or "")
    metadata = {
        k: v
        for k, v in {
            "conversationId": message.conversation_id,
            "webLink": message.web_link,
            "internetMessageId": message.internet_message_id,
            "folderId": message.parent_folder_id,
        }.items()
        if v
    }
    return DocumentInput(
        source=f"graph:message:{message.id}",
        text=f"{head}\n\n{body.strip()}",
        title=message.subject or "(no subject)",
        date=date,
        kind="email",
        metadata=metadata,
    )


def event_document(event: Event) -> DocumentInput:
    start = event.start.parse() if event.start else None
    end = event.end.parse() if event.end else None
    when = f"{start.isoformat() if start else '?'} to {end.isoformat() if end else '?'}"
    attendees = ", ".join(a.email_address.text() for a in event.attendees if a.email_address)
    head = _headers(
        [
            ("Event", event.subject),
            ("When", when),
            ("Where", event.location.display_name if event.location else None),
            ("Organizer", event.organizer.text() if event.organizer else None),
            ("Attendees", attendees),
            ("Status", "cancelled" if event.is_cancelled else None),
        ]
    )
    body = event.body.text() if event.body else ""
    metadata = {"webLink": event.web_link} if event.web_link else {}
    return DocumentInput(
        source=f"graph:event:{event.id}",
        text=f"{head}\n\n{body.strip()}",
        title=event.subject or "(no title)",
        date=start,
        kind="event",
        metadata=metadata,
    )


def drive_document(
    item: DriveItem,
    segments: list[tuple[int | None, str]],
    *,
    title: str,
    kind: str,
    folder: str | None = None,
    size: int | None = None,
    library: str | None = None,
) -> DocumentInput:
    """`folder` is the path of the item's folder ("/Documents/Reports"; "" at the root) when the caller
    rebuilt it from the parent chain; otherwise it comes from `parentReference.path`, which delta
    responses leave out. `size` is the byte count actually served, when it differs from `size`.
    `library` names the SharePoint library ("Marketing / Documents") a path is in; none: the OneDrive."""
    if folder is None:
        parent = (item.parent_reference.path or "") if item.parent_reference else ""
        folder = parent.split(":", 1)[-1] if parent else None
    path = f"{folder.rstrip('/')}/{item.name}" if folder is not None else (item.name or "")
    served = size if size is not None else item.size
    values = {
        "name": item.name,
        "path": path,
        "library": library,
        "webUrl": item.web_url,
        "size": str(served or ""),
    }
    metadata = {k: v for k, v in values.items() if v}
    pages = [PageText(text=text, page=page) for page, text in segments]
    return DocumentInput(
        source=f"graph:driveItem:{item.id}",
        pages=pages,
        title=title or item.name or "",
        date=item.last_modified_date_time,
        kind=kind,
        metadata=metadata,
    )


def email_in(message: Message) -> EmailIn:
    """A message in the shape /v1/summarize takes (`thread` entries)."""
    date = message.received_date_time or message.sent_date_time
    return EmailIn(
        body=message.body.text() if message.body else (message.body_preview or ""),
        subject=(message.subject or "")[:1000],
        sender=(message.sender.text() if message.sender else "")[:320],
        to=[r.text()[:320] for r in message.to_recipients if r.text()],
        cc=[r.text()[:320] for r in message.cc_recipients if r.text()],
        date=date.isoformat() if date else None,
    )

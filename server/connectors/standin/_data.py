"""The stand-in's tenant: one user's mailbox, OneDrive and calendar, generated from a seed, with a change log.

Delta semantics come from the change log. Every mutation appends `(seq, scope, id)`; a scope is a mail
folder ("mail:<folder id>"), "drive" or "calendar". A delta round over a scope covers the ids with log
entries in `(since, snapshot]`, in id order: that set never changes once the snapshot is taken, so a
round can page with "the last id served" as its cursor while the tenant keeps changing underneath. Each
id is served in its *current* state (or as removed when it has left the scope), and the round ends with
a delta link that starts the next round at `snapshot`. Changes made during a round show up again in the
next round, as Graph promises: at least once, possibly twice, never lost.

Graph writes (the endpoints Deskpilot's actions use: reply drafts, events, To Do tasks, OneDrive uploads)
change the tenant through the methods under "writes" below, which also note what they created, so a test
can ask `effects()` whether an action made its effect exactly once and whether compensating removed it.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from deskpilot.server.connectors.standin._files import docx_bytes, html_text, pdf_bytes

__all__ = [
    "DriveFile",
    "Event",
    "Folder",
    "Library",
    "Message",
    "Site",
    "Tenant",
    "TodoList",
    "TodoTask",
    "generate",
]

USER_ID = "6f1c4c1e-8d1b-4b6e-9c3a-2f5d7e8a9b0c"
TENANT_ID = "9b2a7c1d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
USER = {
    "id": USER_ID,
    "displayName": "Alex Wilber",
    "givenName": "Alex",
    "surname": "Wilber",
    "userPrincipalName": "alex.wilber@contoso.example",
    "mail": "alex.wilber@contoso.example",
}
_EPOCH = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
_PEOPLE = [
    ("Megan Bowen", "megan.bowen"),
    ("Adele Vance", "adele.vance"),
    ("Lee Gu", "lee.gu"),
    ("Nestor Wilke", "nestor.wilke"),
    ("Patti Fernandez", "patti.fernandez"),
    ("Isaiah Langer", "isaiah.langer"),
    ("Lidia Holloway", "lidia.holloway"),
]
_TOPICS = [
    "quarterly budget",
    "office move",
    "vendor contract",
    "hiring plan",
    "security review",
    "product launch",
    "customer escalation",
    "travel policy",
    "board meeting",
    "data migration",
    "training schedule",
    "marketing campaign",
    "warranty claim",
    "server outage",
    "audit findings",
]
_SENTENCES = [
    "Please review the attached figures before Thursday.",
    "We agreed to revisit the open points.",
    "The team needs a decision by the end of the week.",
    "I have updated the shared notes.",
    "Let me know if anything is unclear.",
    "The numbers look better than last quarter.",
    "Legal asked for one more change to the wording.",
    "Can we move the call to the afternoon?",
    "The customer confirmed the new delivery date.",
    "Thanks for pulling this together so fast.",
]


def graph_id(prefix: str, *parts: object) -> str:
    """An id shaped like Graph's: base64 with '-', '_' and '=' that must survive URL quoting."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode()[:38] + "AAA="


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str
    hidden: bool = False


@dataclass
class Message:
    id: str
    folder_id: str
    conversation_id: str
    subject: str
    body: str
    sender: tuple[str, str]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    received: datetime
    version: int = 1
    is_read: bool = False
    modified: datetime = field(default_factory=lambda: _EPOCH)
    is_draft: bool = False
    extended: dict[str, str] = field(default_factory=dict)  # singleValueExtendedProperties: id -> value

    @property
    def marker(self) -> str:
        """A string only this version of this message contains (tests look for it in the index)."""
        return f"ref-{hashlib.sha1(self.id.encode()).hexdigest()[:10]}-v{self.version}"


@dataclass
class DriveFile:
    id: str
    name: str
    parent_id: str
    content: bytes = b""
    is_folder: bool = False
    version: int = 1
    marker: str = ""  # text the file's indexed content contains; "" when it is not indexable
    modified: datetime = field(default_factory=lambda: _EPOCH)
    library: str = ""  # the SharePoint document library (its drive id) it is in; "" for the user's OneDrive


@dataclass
class Site:
    """A SharePoint site; `followed` ones are what `/me/followedSites` lists."""

    id: str  # "contoso.sharepoint.com,<site collection guid>,<web guid>", as Graph names sites
    name: str  # the URL segment: https://contoso.sharepoint.com/sites/<name>
    display_name: str
    followed: bool = True


@dataclass
class Library:
    """A site's document library: a drive of its own ("b!..."), with its own root and delta feed."""

    id: str
    name: str
    site_id: str
    root_id: str


@dataclass
class Event:
    id: str
    subject: str
    body: str
    start: datetime
    minutes: int
    location: str
    organizer: tuple[str, str]
    attendees: list[tuple[str, str]]
    version: int = 1
    modified: datetime = field(default_factory=lambda: _EPOCH)
    is_organizer: bool = False
    transaction_id: str = ""  # set by the client that created it (POST /me/events), never changes
    extended: dict[str, str] = field(default_factory=dict)

    @property
    def marker(self) -> str:
        return f"ref-{hashlib.sha1(self.id.encode()).hexdigest()[:10]}-v{self.version}"


@dataclass
class TodoList:
    id: str
    display_name: str
    wellknown: str = "none"  # "defaultList" for the user's default list ("Tasks")


@dataclass
class TodoTask:
    id: str
    list_id: str
    title: str
    body: str
    created: datetime
    due: str | None = None  # dateTime of a dateTimeTimeZone, as the client sent it
    due_zone: str = "UTC"
    linked: list[dict[str, str]] = field(default_factory=list)  # linkedResources, with their ids


# Well-known mail folder names Graph accepts in place of an id (`/me/mailFolders/drafts`).
WELL_KNOWN_FOLDERS = {
    "inbox": "Inbox",
    "drafts": "Drafts",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "archive": "Archive",
}


class Tenant:
    """All state of the stand-in, guarded by one lock; the server and tests call its methods."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.folders: dict[str, Folder] = {}
        self.messages: dict[str, Message] = {}
        self.files: dict[str, DriveFile] = {}
        self.events: dict[str, Event] = {}
        self.log: list[tuple[int, str, str]] = []
        self.seq = 0
        self.epoch = 1  # delta links of an older epoch have expired (410)
        self.drift: dict[str, dict[str, Any]] = {}  # id -> properties served instead (schema drift)
        # What real tenants do to files (see README "Graph stand-in"): ids of files served with more
        # bytes than their `size` (SharePoint rewrites Office and PDF files), files Graph will not serve
        # (id -> "malware": 403 malwareDetected, or "bad_request": an empty 400), and whether drive delta
        # responses leave out parentReference.path (real ones do).
        self.rewritten: set[str] = set()
        self.blocked: dict[str, str] = {}
        self.omit_paths = False
        # SharePoint: sites (followed or not) and their document libraries, whose files are in `files`
        # with their library's id; each library's delta feed is the change-log scope "drive:<drive id>".
        self.sites: dict[str, Site] = {}
        self.libraries: dict[str, Library] = {}
        self._n = 0
        # Every mailbox has a default To Do list; ids come from names, not `_next()`, so adding the lists
        # leaves the ids of everything generated after them as they were.
        self.todo_lists: dict[str, TodoList] = {}
        self.tasks: dict[str, TodoTask] = {}
        for name, wellknown in (("Tasks", "defaultList"), ("Follow-ups", "none")):
            todo = TodoList(graph_id("AQMkADAwATNiZmYAZC1", name), name, wellknown)
            self.todo_lists[todo.id] = todo
        self.graph_created: list[tuple[str, str]] = []  # (kind, id) of what Graph writes created

    # -- change log ---------------------------------------------------------------------------------

    def touch(self, scope: str, item_id: str) -> None:
        self.seq += 1
        self.log.append((self.seq, scope, item_id))

    def round_ids(self, scope: str, since: int, snapshot: int, after: str) -> list[str]:
        ids = {i for s, sc, i in self.log if sc == scope and since < s <= snapshot}
        return sorted(i for i in ids if i > after)

    def expire_delta_links(self) -> None:
        with self.lock:
            self.epoch += 1

    def _next(self) -> int:
        self._n += 1
        return self._n

    # -- mail -----------------------------------------------------------------------------------------

    def add_folder(self, name: str, parent_id: str = "", hidden: bool = False) -> Folder:
        with self.lock:
            folder = Folder(
                graph_id("AAMkAGFld", name, self._next()), name, parent_id or _ROOT_FOLDER, hidden
            )
            self.folders[folder.id] = folder
            return folder

    def folder(self, name: str) -> Folder:
        return next(f for f in self.folders.values() if f.display_name == name)

    def add_message(
        self,
        folder_id: str,
        subject: str,
        body: str,
        *,
        conversation_id: str | None = None,
        sender: tuple[str, str] = _PEOPLE[0],
        to: list[tuple[str, str]] | None = None,
        cc: list[tuple[str, str]] | None = None,
        received: datetime | None = None,
    ) -> Message:
        with self.lock:
            n = self._next()
            message = Message(
                graph_id("AAMkAGMsg", n, subject),
                folder_id,
                conversation_id or graph_id("AAQkAGCnv", n, subject),
                subject,
                body,
                sender,
                to or [("Alex Wilber", "alex.wilber")],
                cc or [],
                received or _EPOCH + timedelta(minutes=17 * n),
            )
            message.modified = message.received
            self.messages[message.id] = message
            self.touch(f"mail:{folder_id}", message.id)
            return message

    def change_message(
        self,
        message_id: str,
        *,
        subject: str | None = None,
        body: str | None = None,
        is_read: bool | None = None,
    ) -> Message:
        with self.lock:
            message = self.messages[message_id]
            if subject is not None or body is not None:
                message.version += 1
                message.subject = subject if subject is not None else message.subject
                message.body = body if body is not None else message.body
            if is_read is not None:
                message.is_read = is_read
            message.modified = message.modified + timedelta(seconds=1)
            self.touch(f"mail:{message.folder_id}", message_id)
            return message

    def move_message(self, message_id: str, folder_id: str) -> Message:
        """Immutable ids (what Deskpilot asks for): the id stays, the message moves to another folder."""
        with self.lock:
            message = self.messages[message_id]
            self.touch(f"mail:{message.folder_id}", message_id)
            message.folder_id = folder_id
            self.touch(f"mail:{folder_id}", message_id)
            return message

    def delete_message(self, message_id: str) -> None:
        with self.lock:
            message = self.messages.pop(message_id)
            self.touch(f"mail:{message.folder_id}", message_id)

    # -- drive ----------------------------------------------------------------------------------------

    def add_file(
        self, name: str, content: bytes, *, parent_id: str = "", marker: str = "", library: str = ""
    ) -> DriveFile:
        """Into `parent_id` (a folder, or a root), else the root of `library` ("" is the OneDrive)."""
        with self.lock:
            parent, library = self._place(parent_id, library)
            item = DriveFile(
                graph_id("01BYE5RZ", name, self._next()),
                name,
                parent,
                content,
                marker=marker,
                library=library,
            )
            item.modified = _EPOCH + timedelta(minutes=self._n)
            self.files[item.id] = item
            self.touch(self.drive_scope(item), item.id)
            return item

    def add_drive_folder(self, name: str, parent_id: str = "", *, library: str = "") -> DriveFile:
        with self.lock:
            parent, library = self._place(parent_id, library)
            item = DriveFile(
                graph_id("01BYE5RZ", "folder", name, self._next()),
                name,
                parent,
                is_folder=True,
                library=library,
            )
            self.files[item.id] = item
            self.touch(self.drive_scope(item), item.id)
            return item

    def _place(self, parent_id: str, library: str) -> tuple[str, str]:
        """(parent id, library) of a new drive item: a parent folder's library wins over `library`."""
        if parent_id in self.files:
            return parent_id, self.files[parent_id].library
        roots = {lib.root_id: lib.id for lib in self.libraries.values()}
        if parent_id in roots:
            return parent_id, roots[parent_id]
        if library:
            return self.libraries[library].root_id, library
        return parent_id or DRIVE_ROOT, ""

    @staticmethod
    def drive_scope(item: DriveFile) -> str:
        """The change-log scope of a drive item: "drive" (OneDrive) or "drive:<library drive id>"."""
        return f"drive:{item.library}" if item.library else "drive"

    def add_site(
        self, display_name: str, *, followed: bool = True, libraries: tuple[str, ...] = ("Documents",)
    ) -> Site:
        """A SharePoint site with its document libraries (empty; `add_file(library=...)` fills them)."""
        with self.lock:
            name = display_name.replace(" ", "")
            guid = uuid.uuid5(uuid.NAMESPACE_URL, f"https://contoso.sharepoint.com/sites/{name}")
            web = uuid.uuid5(guid, "web")
            site = Site(f"contoso.sharepoint.com,{guid},{web}", name, display_name, followed)
            self.sites[site.id] = site
            for library in libraries:
                drive_id = "b!" + graph_id("", site.id, library)[:40].replace("=", "")
                root = graph_id("01SPROOT", drive_id)
                self.libraries[drive_id] = Library(drive_id, library, site.id, root)
            return site

    def library(self, site: Site, name: str = "Documents") -> Library:
        return next(lib for lib in self.libraries.values() if lib.site_id == site.id and lib.name == name)

    def drive_folder(self, name: str) -> DriveFile:
        return next(f for f in self.files.values() if f.is_folder and f.name == name)

    def change_file(
        self, file_id: str, content: bytes, *, marker: str = "", name: str | None = None
    ) -> DriveFile:
        with self.lock:
            item = self.files[file_id]
            item.content, item.marker, item.version = content, marker, item.version + 1
            item.name = name or item.name
            item.modified = item.modified + timedelta(seconds=1)
            self.touch(self.drive_scope(item), file_id)
            return item

    def move_file(self, file_id: str, parent_id: str) -> DriveFile:
        """Into another folder (DRIVE_ROOT for the top); the id stays, delta reports the new parent."""
        with self.lock:
            item = self.files[file_id]
            item.parent_id = parent_id
            item.version += 1
            item.modified = item.modified + timedelta(seconds=1)
            self.touch(self.drive_scope(item), file_id)
            return item

    def delete_file(self, file_id: str) -> None:
        """Deleting a folder deletes what is in it; delta reports each of them deleted."""
        with self.lock:
            item = self.files.pop(file_id)
            self.touch(self.drive_scope(item), file_id)
            if item.is_folder:
                for child in [f.id for f in self.files.values() if f.parent_id == file_id]:
                    self.delete_file(child)

    def path_of(self, item: DriveFile) -> str:
        """`parentReference.path`: "/drive/root:/Documents" in the OneDrive, "/drives/<id>/root:/..." in a
        library (a root is not in `files`, so the walk ends there)."""
        parts: list[str] = []
        parent = self.files.get(item.parent_id)
        while parent is not None and parent.id != DRIVE_ROOT:
            parts.append(parent.name)
            parent = self.files.get(parent.parent_id)
        root = f"/drives/{item.library}/root:" if item.library else "/drive/root:"
        return root + "".join("/" + p for p in reversed(parts))

    # -- calendar -------------------------------------------------------------------------------------

    def add_event(
        self,
        subject: str,
        body: str,
        start: datetime,
        *,
        minutes: int = 30,
        location: str = "Room 12",
        organizer: tuple[str, str] = _PEOPLE[1],
        attendees: list[tuple[str, str]] | None = None,
    ) -> Event:
        with self.lock:
            event = Event(
                graph_id("AAMkAGEvt", subject, self._next()),
                subject,
                body,
                start,
                minutes,
                location,
                organizer,
                attendees or [("Alex Wilber", "alex.wilber")],
            )
            self.events[event.id] = event
            self.touch("calendar", event.id)
            return event

    def change_event(self, event_id: str, *, subject: str | None = None, body: str | None = None) -> Event:
        with self.lock:
            event = self.events[event_id]
            event.version += 1
            event.subject = subject or event.subject
            event.body = body or event.body
            event.modified = event.modified + timedelta(seconds=1)
            self.touch("calendar", event_id)
            return event

    def delete_event(self, event_id: str) -> None:
        with self.lock:
            del self.events[event_id]
            self.touch("calendar", event_id)

    # -- writes (Graph POST/PUT/DELETE) ---------------------------------------------------------------

    def well_known_folder(self, name: str) -> Folder:
        """The mail folder behind a well-known name. Drafts and Deleted Items are made on first use, so
        that a generated mailbox (and every test that counts its folders) stays as it was."""
        display = WELL_KNOWN_FOLDERS[name.lower()]
        with self.lock:
            folder = self._top_folder(display)
            if folder is None:
                folder = Folder(graph_id("AAMkAGFld", "wellknown", display), display, _ROOT_FOLDER)
                self.folders[folder.id] = folder
            return folder

    def _top_folder(self, display_name: str) -> Folder | None:
        return next(
            (
                f
                for f in self.folders.values()
                if f.display_name == display_name and f.parent_id == _ROOT_FOLDER
            ),
            None,
        )

    def create_reply(
        self,
        message_id: str,
        comment: str,
        *,
        reply_all: bool,
        extended: dict[str, str],
        now: datetime,
    ) -> Message:
        """createReply / createReplyAll: a draft in Drafts, in the original's conversation, to its sender
        (and for reply-all to its other recipients too, the user left out), subject "RE: ..."."""
        with self.lock:
            original = self.messages[message_id]
            me = (USER["displayName"], USER["mail"].split("@")[0])
            to = [original.sender]
            cc: list[tuple[str, str]] = []
            if reply_all:
                to += [p for p in original.to if p != me and p not in to]
                cc = [p for p in original.cc if p != me]
            subject = original.subject if original.subject.startswith("RE: ") else f"RE: {original.subject}"
            quoted = "\n".join("> " + line for line in original.body.splitlines())
            draft = self.add_message(
                self.well_known_folder("drafts").id,
                subject,
                f"{comment}\n\nFrom: {original.sender[0]}\nSubject: {original.subject}\n\n{quoted}",
                conversation_id=original.conversation_id,
                sender=me,
                to=to,
                cc=cc,
                received=now,
            )
            draft.is_draft, draft.is_read, draft.extended = True, True, dict(extended)
            self.graph_created.append(("draft", draft.id))
            return draft

    def delete_message_as_graph(self, message_id: str) -> None:
        """DELETE /me/messages/{id} is a soft delete: the message moves to Deleted Items (same immutable
        id); deleting it there removes it for good."""
        with self.lock:
            message = self.messages[message_id]
            deleted = self.well_known_folder("deleteditems")
            if message.folder_id == deleted.id:
                self.delete_message(message_id)
            else:
                self.move_message(message_id, deleted.id)

    def create_event(
        self,
        subject: str,
        body: str,
        start: datetime,
        minutes: int,
        *,
        location: str,
        attendees: list[tuple[str, str]],
        transaction_id: str,
        extended: dict[str, str],
    ) -> Event:
        with self.lock:
            me = (USER["displayName"], USER["mail"].split("@")[0])
            event = self.add_event(
                subject, body, start, minutes=minutes, location=location, organizer=me, attendees=attendees
            )
            event.is_organizer, event.transaction_id, event.extended = True, transaction_id, dict(extended)
            event.modified = datetime.now(UTC).replace(microsecond=0)
            self.graph_created.append(("event", event.id))
            return event

    def add_task(
        self,
        list_id: str,
        title: str,
        body: str,
        *,
        due: str | None = None,
        due_zone: str = "UTC",
        linked: list[dict[str, str]] | None = None,
        now: datetime | None = None,
    ) -> TodoTask:
        with self.lock:
            task = TodoTask(
                graph_id("AAkALgAAAAAAHYQDEapmEc2byACqAC", list_id, title, self._next()),
                list_id,
                title,
                body,
                (now or datetime.now(UTC)).replace(microsecond=0),
                due,
                due_zone,
                [{"id": str(uuid.uuid4()), **resource} for resource in linked or []],
            )
            self.tasks[task.id] = task
            self.graph_created.append(("task", task.id))
            return task

    def delete_task(self, task_id: str) -> None:
        with self.lock:
            del self.tasks[task_id]

    def drive_item_at(self, path: str) -> DriveFile | None:
        """The item at a path under the drive root ("Finance/Invoices/a.txt"); names compare without case,
        as OneDrive's do."""
        with self.lock:
            parent = DRIVE_ROOT
            item: DriveFile | None = None
            for name in filter(None, path.split("/")):
                children = (f for f in self.files.values() if f.parent_id == parent)
                item = next((f for f in children if f.name.lower() == name.lower()), None)
                if item is None:
                    return None
                parent = item.id
            return item

    def upload(self, path: str, content: bytes, *, conflict: str = "replace") -> tuple[DriveFile, bool]:
        """PUT .../root:/{path}:/content: (the item, whether it is new). Missing folders are created. An
        existing file is replaced (`conflict="replace"`, Graph's default), kept (`"fail"`: FileExistsError)
        or left alone while the new one gets a free name (`"rename"`: "name 1.txt")."""
        with self.lock:
            *folders, name = [p for p in path.split("/") if p]
            parent = DRIVE_ROOT
            for folder_name in folders:
                folder = self.drive_item_at("/".join([*self._names(parent), folder_name]))
                if folder is None:
                    folder = self.add_drive_folder(folder_name, parent)
                    self.graph_created.append(("folder", folder.id))
                parent = folder.id
            existing = self.drive_item_at("/".join([*self._names(parent), name]))
            if existing is not None and (conflict == "fail" or existing.is_folder):
                raise FileExistsError(name)
            if existing is not None and conflict == "replace":
                return self.change_file(existing.id, content), False
            if existing is not None:  # rename
                stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
                n = 1
                while self.drive_item_at("/".join([*self._names(parent), f"{stem} {n}{dot}{ext}"])):
                    n += 1
                name = f"{stem} {n}{dot}{ext}"
            item = self.add_file(name, content, parent_id=parent)
            self.graph_created.append(("file", item.id))
            return item, True

    def _names(self, item_id: str) -> list[str]:
        names: list[str] = []
        while item_id in self.files and item_id != DRIVE_ROOT:
            names.append(self.files[item_id].name)
            item_id = self.files[item_id].parent_id
        return names[::-1]

    def effects(self, *, include_gone: bool = False) -> list[dict[str, Any]]:
        """What Graph writes created, in order: kind, id, the idempotency markers the client put on it
        (extended property values, transactionId, linkedResource externalIds), and where it is. A draft
        counts as gone once it has left Drafts (a deleted one sits in Deleted Items)."""
        with self.lock:
            drafts = getattr(self._top_folder("Drafts"), "id", None)  # looking does not create it
            out: list[dict[str, Any]] = []
            for kind, item_id in self.graph_created:
                effect: dict[str, Any] = {"kind": kind, "id": item_id, "markers": [], "gone": False}
                if kind == "draft":
                    message = self.messages.get(item_id)
                    effect["gone"] = message is None or message.folder_id != drafts
                    if message is not None:
                        effect["markers"] = list(message.extended.values())
                        effect["subject"] = message.subject
                elif kind == "event":
                    event = self.events.get(item_id)
                    effect["gone"] = event is None
                    if event is not None:
                        effect["markers"] = [event.transaction_id, *event.extended.values()]
                        effect["subject"] = event.subject
                elif kind == "task":
                    task = self.tasks.get(item_id)
                    effect["gone"] = task is None
                    if task is not None:
                        effect["markers"] = [r["externalId"] for r in task.linked if r.get("externalId")]
                        effect["title"], effect["listId"] = task.title, task.list_id
                else:  # file or folder
                    item = self.files.get(item_id)
                    effect["gone"] = item is None
                    if item is not None:
                        effect["path"] = "/".join(self._names(item.id))
                if include_gone or not effect["gone"]:
                    out.append(effect)
            return out

    # -- what a correct sync must end with ------------------------------------------------------------

    def expected(
        self,
        *,
        max_file_bytes: int | None = None,
        window_days: int | None = None,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """source reference -> the marker its indexed text must contain, for everything indexable."""
        with self.lock:
            out = {f"graph:message:{m.id}": m.marker for m in self.messages.values()}
            for item in self.files.values():
                too_big = max_file_bytes is not None and len(item.content) > max_file_bytes
                if item.marker and not item.is_folder and not too_big:
                    out[f"graph:driveItem:{item.id}"] = item.marker
            now = now or datetime.now(UTC)
            for event in self.events.values():
                if window_days is None or abs(event.start - now) <= timedelta(days=window_days):
                    out[f"graph:event:{event.id}"] = event.marker
            return out


_ROOT_FOLDER = graph_id("AAMkAGRoot", "msgfolderroot")
DRIVE_ROOT = graph_id("01BYE5RZ", "root")
ROOT_FOLDER = _ROOT_FOLDER


def _body(rng: random.Random, topic: str, marker_hint: str) -> str:
    sentences = " ".join(rng.choice(_SENTENCES) for _ in range(rng.randint(2, 5)))
    return f"Hi,\n\nAbout the {topic}: {sentences}\n\n{marker_hint}\n\nBest regards"


def _file_bytes(kind: str, title: str, text: str) -> bytes:
    if kind in ("txt", "md"):
        return (f"# {title}\n\n{text}\n" if kind == "md" else f"{title}\n\n{text}\n").encode()
    if kind == "html":
        return html_text(title, [text]).encode()
    if kind == "docx":
        return docx_bytes([text], title=title)
    return pdf_bytes(f"{title}\n{text}", title=title)


def file_content(name: str, title: str, text: str) -> bytes:
    """Real bytes of a .txt, .md, .html, .docx or .pdf file holding `text` (see `_files.py`)."""
    return _file_bytes(name.rsplit(".", 1)[-1].lower(), title, text)


def generate(
    *, seed: int = 0, messages: int = 300, files: int = 40, events: int = 30, now: datetime | None = None
) -> Tenant:
    """A tenant with `messages` messages over five folders (threads of 1-5), `files` indexable files of
    five types plus a few that are not indexable, and `events` calendar events around `now`."""
    rng = random.Random(seed)
    tenant = Tenant()
    with tenant.lock:
        inbox = tenant.add_folder("Inbox")
        folders = [
            inbox,
            tenant.add_folder("Sent Items"),
            tenant.add_folder("Archive"),
            tenant.add_folder("Projects", inbox.id),
            tenant.add_folder("Receipts", inbox.id),
        ]
        made = 0
        while made < messages:
            topic = rng.choice(_TOPICS)
            folder = rng.choice(folders)
            conversation = None
            for i in range(min(rng.randint(1, 5), messages - made)):
                who = rng.choice(_PEOPLE)
                subject = ("RE: " if i else "") + topic.capitalize()
                message = tenant.add_message(
                    folder.id,
                    subject,
                    "",
                    conversation_id=conversation,
                    sender=who,
                    to=[("Alex Wilber", "alex.wilber")],
                    cc=rng.sample(_PEOPLE, rng.randint(0, 2)),
                )
                message.body = _body(rng, topic, message.marker)
                conversation = message.conversation_id
                made += 1
        docs = tenant.add_drive_folder("Documents")
        reports = tenant.add_drive_folder("Reports", docs.id)
        kinds = ["txt", "md", "html", "docx", "pdf"]
        for n in range(files):
            kind = kinds[n % len(kinds)]
            topic = _TOPICS[n % len(_TOPICS)]
            marker = f"file-{n:03d}-{hashlib.sha1(f'{seed}/{n}'.encode()).hexdigest()[:8]}"
            name = f"{topic.replace(' ', '-')}-{n:03d}.{kind}"
            text = f"Notes on the {topic}. {rng.choice(_SENTENCES)} Reference {marker}."
            tenant.add_file(
                name,
                file_content(name, topic.capitalize(), text),
                parent_id=rng.choice([docs.id, reports.id, DRIVE_ROOT]),
                marker=marker,
            )
        # Not indexable: a picture (no loader) and an empty text file.
        tenant.add_file("team-photo.png", b"\x89PNG\r\n\x1a\n" + bytes(256), parent_id=docs.id)
        tenant.add_file("empty.txt", b"", parent_id=docs.id)
        now = now or datetime.now(UTC)
        for _ in range(events):
            topic = rng.choice(_TOPICS)
            start = (now + timedelta(days=rng.randint(-30, 30), hours=rng.randint(0, 8))).replace(
                minute=0, second=0, microsecond=0
            )
            event = tenant.add_event(
                f"{topic.capitalize()} sync",
                "",
                start,
                minutes=rng.choice([30, 60]),
                location=f"Room {rng.randint(1, 40)}",
                organizer=rng.choice(_PEOPLE),
                attendees=rng.sample(_PEOPLE, 3),
            )
            event.body = f"Agenda: {topic}. {rng.choice(_SENTENCES)} {event.marker}"
    return tenant

"""The stand-in's HTTP server: Graph endpoints, an msal-compatible authority, faults and a mutation API.

Reads are served here; the writes Deskpilot's actions make (and the lookups they make first) are in
`_actions.py`. Faults apply to both: drop, throttle and unavailable come before a write is processed, as
when Graph never saw it; drop_after closes the connection after the write is applied, with no answer.

Plain `http.server` on purpose: fault injection needs to do what a framework would not let it, such as
closing a connection without an answer or sending half a JSON document.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import secrets
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from deskpilot.server.connectors.standin._actions import ActionEndpoints, has_extended
from deskpilot.server.connectors.standin._data import (
    ROOT_FOLDER,
    TENANT_ID,
    USER,
    WELL_KNOWN_FOLDERS,
    DriveFile,
    Library,
    Site,
    Tenant,
    generate,
)
from deskpilot.server.connectors.standin._payloads import (
    deleted_file_json,
    event_json,
    extended_json,
    file_json,
    folder_json,
    library_json,
    message_json,
    site_json,
    user_json,
)
from deskpilot.server.connectors.standin._replies import Reply as _Reply
from deskpilot.server.connectors.standin._replies import graph_error as _error

__all__ = ["FAULT_KINDS", "Faults", "StandIn"]

FAULT_KINDS = (
    "throttle",
    "unavailable",
    "slow",
    "drop",
    "malformed",
    "unknown_fields",
    "expired",
    "drop_after",
    "storm",
    "long_throttle",
    "size_mismatch",
    "no_path",
)
# Not in a default mix: a long Retry-After defers a scope to a later run, by design.
_DEFAULT_KINDS = tuple(k for k in FAULT_KINDS if k != "long_throttle")


@dataclass
class Faults:
    """A fraction `rate` of Graph requests gets a fault, drawn by `kinds` weights (seeded, reproducible).

    throttle: 429 with Retry-After; unavailable: 503 without it; slow: the answer comes after
    `slow_seconds`; drop: the connection closes with no answer (or mid-body for file content);
    malformed: half a JSON document; unknown_fields: properties Graph does not have (yet); expired: 410
    for a delta link (only requests that carry one); drop_after: a write is applied, then the connection
    closes with no answer (only writes: the case where a client cannot know whether to send it again).
    expired answers `expired_status` (Graph: 410, or 400/404 `syncStateNotFound` for Outlook's delta).
    storm: this request and the next `storm_length` Graph requests get 429 `Retry-After: 1`, as a tenant
    under sustained throttling answers; long_throttle: 429 with `Retry-After: long_retry_after`;
    size_mismatch: a download serves more bytes than the item's `size` says (SharePoint rewrites Office
    and PDF files as it serves them; the content is whole); no_path: a drive delta page whose items have
    no `parentReference.path` (real delta responses never have it; `Tenant.omit_paths` for every page).
    `methods` limits faults to requests with those HTTP methods, `paths` to requests whose path contains
    one of them (empty: every request).
    """

    rate: float = 0.0
    kinds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_DEFAULT_KINDS, 1.0))
    retry_after: int = 1
    expired_status: int = 410
    storm_length: int = 6
    long_retry_after: int = 3600
    slow_seconds: float = 2.0
    seed: int = 0
    max_faults: int | None = None  # stop injecting after this many (None: never stop)
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}; known: {FAULT_KINDS}")


# What a "rewritten" file gains as it is served: trailing bytes every format here ignores (text
# whitespace; after a PDF's %%EOF; after a .docx's zip directory).
_REWRITE_PADDING = b"\n" * 9


_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
# Any of these lets a token read SharePoint sites; without one, site endpoints answer 403 as Graph does.
_SITE_SCOPES = frozenset(
    {"Sites.Read.All", "Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All"}
)


def sync_state_gone(status: int) -> _Reply:
    """An expired delta or skip token, as Graph says it: 410 Gone, or a 40X `syncStateNotFound`."""
    return _error(status, "syncStateNotFound", "The sync state generation is not found (resync required).")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _unb64(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return data


class StandIn:
    """A Graph stand-in on 127.0.0.1. `with StandIn(generate()) as graph:`; `graph.url`, `graph.graph_url`.

    Its token endpoint keeps the user's consent as Entra does: a sign-in consents to the scopes it asks
    for; a refresh for a scope nobody consented to (neither that user nor `admin_consent`) is refused
    (`invalid_grant`, AADSTS65001); a token is good for the scopes it was issued for, and SharePoint
    site endpoints answer 403 to one without a Sites.* scope."""

    def __init__(
        self,
        tenant: Tenant | None = None,
        *,
        port: int = 0,
        faults: Faults | None = None,
        authority_host: str = "https://login.standin.test",
        max_page_size: int = 25,
        token_lifetime: int = 3600,
        approve_after_polls: int = 0,
        admin_consent: Sequence[str] = (),
    ) -> None:
        self.tenant = tenant or generate()
        self.faults = faults or Faults()
        self.authority_host = authority_host.rstrip("/")
        self.max_page_size = max_page_size
        self.token_lifetime = token_lifetime
        self.approve_after_polls = approve_after_polls
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.token_scopes: dict[str, frozenset[str]] = {}  # access token -> the scopes it was issued for
        # Delegated permissions the user consented to at sign-in, and those IT granted for everyone
        # (admin consent). A refresh that asks for a permission in neither is refused, as Entra does.
        self.consented: set[str] = set()
        self.admin_consent = set(admin_consent)
        self.refresh_tokens: set[str] = set()
        self.issued: list[str] = []  # every access and refresh token handed out, for leak scans
        self.device_codes: dict[str, dict[str, Any]] = {}
        self.stats: Counter[str] = Counter()
        self.requests: list[list[Any]] = []  # [arrival time, method, path, query, status]
        self._rng = random.Random(self.faults.seed)
        self._storm_left = 0
        self._lock = threading.Lock()
        self._httpd = _StandInServer(("127.0.0.1", port), self)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graph_url(self) -> str:
        return f"{self.url}/v1.0"

    def start(self) -> StandIn:
        # A short poll: `stop()` waits for the serving loop to notice, and tests stop a stand-in each.
        serve = {"poll_interval": 0.02}
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs=serve, name="graph-standin", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the command line); `start()` serves in a thread."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.stats = Counter({k: v for k, v in self.stats.items() if not k.startswith("fault:")})
            self.faults = faults
            self._rng = random.Random(faults.seed)

    def revoke_access_tokens(self) -> None:
        """Every access token stops working (as when it expires); refresh tokens still work."""
        with self._lock:
            self.access_tokens.clear()

    def in_storm(self) -> bool:
        """Whether this request falls in a throttling storm (and counts it)."""
        with self._lock:
            if self._storm_left <= 0:
                return False
            self._storm_left -= 1
            self.stats["storm_throttles"] += 1
            return True

    def pick_fault(self, has_delta_token: bool, method: str = "GET", path: str = "") -> str | None:
        with self._lock:
            faults = self.faults
            injected = sum(v for k, v in self.stats.items() if k.startswith("fault:"))
            if faults.max_faults is not None and injected >= faults.max_faults:
                return None
            if faults.methods and method not in faults.methods:
                return None
            if faults.paths and not any(part in path for part in faults.paths):
                return None
            if faults.rate <= 0 or self._rng.random() >= faults.rate:
                return None
            applies = {
                "expired": has_delta_token,
                "drop_after": method != "GET",
                "size_mismatch": path.startswith("/_download/"),
                "no_path": path.endswith("/root/delta"),
            }
            kinds = {k: w for k, w in faults.kinds.items() if w > 0 and applies.get(k, True)}
            if not kinds:
                return None
            kind = self._rng.choices(list(kinds), weights=list(kinds.values()))[0]
            self.stats[f"fault:{kind}"] += 1
            if kind == "storm":
                self._storm_left = faults.storm_length
            return kind

    # -- tokens ------------------------------------------------------------------------------------------

    def issue_tokens(self, client_id: str, scope: str) -> dict[str, Any]:
        access, refresh = "standin-at-" + secrets.token_urlsafe(32), "standin-rt-" + secrets.token_urlsafe(32)
        now = int(time.time())
        with self._lock:
            self.access_tokens[access] = now + self.token_lifetime
            self.refresh_tokens.add(refresh)
            self.issued += [access, refresh]
            self.stats["tokens_issued"] += 1
        claims = {
            "aud": client_id,
            "iss": f"{self.authority_host}/{TENANT_ID}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": USER["displayName"],
            "oid": USER["id"],
            "preferred_username": USER["userPrincipalName"],
            "sub": "standin-subject",
            "tid": TENANT_ID,
            "ver": "2.0",
        }
        id_token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        granted = " ".join(s for s in scope.split() if s not in _RESERVED_SCOPES)
        with self._lock:
            self.token_scopes[access] = frozenset(granted.split())
        return {
            "token_type": "Bearer",
            "scope": granted,
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
            "client_info": _b64({"uid": USER["id"], "utid": TENANT_ID}),
        }

    def check_bearer(self, header: str | None) -> frozenset[str]:
        """The scopes of the request's access token; 401 when it is unknown or expired."""
        token = (header or "").removeprefix("Bearer ").strip()
        with self._lock:
            expiry = self.access_tokens.get(token)
            scopes = self.token_scopes.get(token, frozenset())
        if expiry is None or expiry < time.time():
            raise _error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        return scopes

    def consent(self, scope: str) -> None:
        """The user consents to what a sign-in asks for (the stand-in's user always accepts)."""
        with self._lock:
            self.consented |= set(scope.split()) - _RESERVED_SCOPES

    def not_consented(self, scope: str) -> set[str]:
        """The permissions in `scope` that neither the user nor an admin consented to."""
        with self._lock:
            return set(scope.split()) - _RESERVED_SCOPES - self.consented - self.admin_consent


def _is_site_path(path: str) -> bool:
    """SharePoint site endpoints: `/sites...` and `/me/followedSites` (a library's `/drives/...` is not)."""
    parts = path.strip("/").split("/")[1:]  # after "v1.0"
    return parts[:1] == ["sites"] or parts[:2] == ["me", "followedSites"]


class QuietHTTPServer(ThreadingHTTPServer):
    """A threaded loopback server for stand-ins (Graph here, the tests' webhook receiver)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (a process killed on purpose) is expected, not a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _StandInServer(QuietHTTPServer):
    """The stand-in's HTTP server: its request handlers reach the stand-in through it."""

    def __init__(self, address: tuple[str, int], standin: StandIn) -> None:
        super().__init__(address, _Handler)
        self.standin = standin


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GraphStandIn/1.0"
    server: _StandInServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `stats` instead
        pass

    @property
    def standin(self) -> StandIn:
        return self.server.standin

    # -- plumbing ----------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        self._record[4] = (
            status  # before the reply leaves: a client that reacts to it sees its request logged
        )
        self.send_response(status)
        content_type = (headers or {}).pop("Content-Type", None) or (
            "application/json; odata.metadata=minimal"
            if not isinstance(body, bytes)
            else "application/octet-stream"
        )
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self._status = status

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self._status = 0

    def _handle(self, method: str) -> None:
        self._status = 0
        split = urlsplit(self.path)
        path = unquote(split.path)
        # Logged on arrival, (time, method, path, query, status); the status is filled in as the reply
        # goes out, so the log is complete by the time the client has its answer.
        self._record: list[Any] = [time.monotonic(), method, path, split.query, 0]
        self.standin.requests.append(self._record)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        body = self._body()
        try:
            if path.startswith("/v1.0/") or path.startswith("/_download/"):
                self._graph(method, path, query, body)
            elif path.startswith("/_standin/"):
                self._send(200, _Admin(self.standin).dispatch(method, path[len("/_standin/") :], query, body))
            else:
                self._auth(method, path, query, body)
        except _Reply as reply:
            self._send(reply.status, reply.body, reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            self._status = self._record[4] = 0

    def _auth(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        _auth_handler(self, method, path, query, body)

    # -- Graph -------------------------------------------------------------------------------------------

    def _graph(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        standin = self.standin
        granted = standin.check_bearer(self.headers.get("Authorization"))
        standin.stats["graph_requests"] += 1
        if _is_site_path(path) and not granted & _SITE_SCOPES:
            raise _error(403, "accessDenied", "Either scp or roles claim need to be present in the token.")
        if standin.in_storm():
            raise _error(429, "TooManyRequests", "Too many requests.", {"Retry-After": "1"})
        fault = standin.pick_fault("$deltatoken" in query, method, path)
        faults = standin.faults
        _refuse(fault, faults)
        if fault == "drop" and not path.startswith("/_download/"):
            self._drop()
            return
        if fault == "slow":
            time.sleep(faults.slow_seconds)
        prefer = self.headers.get("Prefer", "")
        graph = _Graph(standin, query, prefer, body, self.headers.get("Content-Type", ""))
        graph.omit_paths = fault == "no_path" or standin.tenant.omit_paths
        with standin.tenant.lock:
            status, body, headers = graph.route(method, path)
        if fault == "size_mismatch" and isinstance(body, bytes):
            body += _REWRITE_PADDING
        if fault == "drop_after":  # applied, and the client never hears of it
            self._drop()
            return
        if isinstance(body, bytes) and fault in ("drop", "malformed"):
            # A download cut short: the promised length, half the bytes, then the connection closes.
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self._drop()
            return
        if fault == "unknown_fields" and isinstance(body, dict):
            body["@standin.futureAnnotation"] = "ignored"
            for item in body.get("value", [body]):
                if isinstance(item, dict):
                    item["contosoFutureProperty"] = {"nested": [1, 2, 3], "flag": True}
        if fault == "malformed" and not isinstance(body, bytes):
            data = json.dumps(body).encode()
            self._send(status, data[: len(data) // 2], {**headers, "Content-Type": "application/json"})
            return
        self._send(status, body, headers)


def _refuse(fault: str | None, faults: Faults) -> None:
    """The faults answered before the request is processed: throttled, unavailable, expired."""
    if fault in ("throttle", "storm", "long_throttle"):
        wait = {"storm": 1, "long_throttle": faults.long_retry_after}.get(fault, faults.retry_after)
        raise _error(429, "TooManyRequests", "Too many requests.", {"Retry-After": str(wait)})
    if fault == "unavailable":
        raise _error(503, "serviceNotAvailable", "The service is temporarily unavailable.")
    if fault == "expired":
        raise sync_state_gone(faults.expired_status)


class _Graph(ActionEndpoints):
    """The Graph endpoints Deskpilot uses, over the tenant (called with the tenant's lock held)."""

    def __init__(
        self, standin: StandIn, query: dict[str, str], prefer: str, body: bytes = b"", content_type: str = ""
    ) -> None:
        self.standin, self.tenant, self.query = standin, standin.tenant, query
        self.body, self.content_type = body, content_type
        self.text_body = 'outlook.body-content-type="text"' in prefer
        self.omit_paths = False  # drive items without parentReference.path (as delta responses are)
        self.time_zone: str | None = None  # Prefer: outlook.timezone="...": event times in that zone
        size = standin.max_page_size
        for part in prefer.split(","):
            name, _, value = part.strip().partition("=")
            if name == "odata.maxpagesize" and value.isdigit():
                size = min(size, int(value))
            if name == "outlook.timezone":
                self.time_zone = value.strip('"')
        if query.get("$top", "").isdigit():
            size = min(size, int(query["$top"]))
        self.page_size = max(1, size)

    def route(self, method: str, path: str) -> tuple[int, Any, dict[str, str]]:
        parts = path.strip("/").split("/")[1:]  # after "v1.0"
        if parts[:1] == ["me"]:
            parts = parts[1:]
        elif parts[:1] in (["sites"], ["drives"]) and method == "GET":
            return self._sharepoint(parts, path)
        elif path.startswith("/_download/"):
            item = self.tenant.files.get(path.split("/")[2])
            if item is None or item.is_folder:
                raise _error(404, "itemNotFound", "The resource could not be found.")
            return self._content(item)
        else:
            raise _error(400, "BadRequest", f"unsupported path {path}")
        answer = self.action_route(method, parts, path)
        if answer is not None:
            return answer
        if method != "GET":
            raise _error(405, "MethodNotAllowed", f"The stand-in does not serve {method} {path}.")
        return self._get(parts, path)

    # Complex only by count (C901): one flat `match` over the Graph routes served, a case per route.
    def _get(self, parts: list[str], path: str) -> tuple[int, Any, dict[str, str]]:  # noqa: C901
        t = self.tenant
        match parts:
            case []:
                return 200, user_json(), {}
            case ["mailFolders"]:
                return self._list(
                    path, [folder_json(t, f) for f in t.folders.values() if f.parent_id == ROOT_FOLDER]
                )
            case ["mailFolders", folder_id, "childFolders"]:
                self._folder(folder_id)
                return self._list(
                    path, [folder_json(t, f) for f in t.folders.values() if f.parent_id == folder_id]
                )
            case ["mailFolders", folder_id]:
                return 200, folder_json(t, self._folder(folder_id)), {}
            case ["mailFolders", folder_id, "messages", "delta"]:
                folder_id = self._folder(folder_id).id
                return self._delta(
                    f"mail:{folder_id}", path, lambda i, first: self._message_delta(folder_id, i, first)
                )
            case ["messages"]:
                return self._list(path, self._filtered_messages())
            case ["messages", message_id]:
                if message_id not in t.messages:
                    raise _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
                return 200, self._message(t.messages[message_id]), {}
            case ["drive", "root", "delta"]:
                return self._delta("drive", path, self._file_delta)
            case ["drive", "items", item_id]:
                if item_id not in t.files:
                    raise _error(404, "itemNotFound", "The resource could not be found.")
                return 200, self._drifted(file_json(t, t.files[item_id])), {}
            case ["drive", "items", item_id, "content"]:
                if item_id not in t.files:
                    raise _error(404, "itemNotFound", "The resource could not be found.")
                return 302, None, {"Location": f"{self.standin.url}/_download/{quote(item_id, safe='')}"}
            case ["calendarView", "delta"]:
                return self._calendar_delta(path)
            case ["followedSites"]:
                return self._list(path, [site_json(s) for s in t.sites.values() if s.followed])
            case ["events", event_id]:
                if event_id not in t.events:
                    raise _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
                return 200, self._event(t.events[event_id]), {}
        raise _error(400, "BadRequest", f"the stand-in does not serve {path}")

    def _sharepoint(self, parts: list[str], path: str) -> tuple[int, Any, dict[str, str]]:
        """`/sites/{id}`, its document libraries, and each library's delta, items and contents."""
        t = self.tenant
        match parts:
            case ["sites", site_id]:
                return 200, site_json(self._site(site_id)), {}
            case ["sites", site_id, "drives"]:
                site = self._site(site_id)
                libraries = [lib for lib in t.libraries.values() if lib.site_id == site.id]
                return self._list(path, [library_json(site, lib) for lib in libraries])
            case ["drives", drive_id, "root", "delta"]:
                self._library(drive_id)
                return self._delta(f"drive:{drive_id}", path, self._file_delta)
            case ["drives", drive_id, "items", item_id]:
                return 200, self._drifted(file_json(t, self._library_item(drive_id, item_id))), {}
            case ["drives", drive_id, "items", item_id, "content"]:
                self._library_item(drive_id, item_id)
                return 302, None, {"Location": f"{self.standin.url}/_download/{quote(item_id, safe='')}"}
        raise _error(400, "BadRequest", f"the stand-in does not serve {path}")

    def _site(self, site_id: str) -> Site:
        if site_id not in self.tenant.sites:
            raise _error(404, "itemNotFound", "Requested site could not be found")
        return self.tenant.sites[site_id]

    def _library(self, drive_id: str) -> Library:
        if drive_id not in self.tenant.libraries:
            raise _error(404, "itemNotFound", "The drive could not be found.")
        return self.tenant.libraries[drive_id]

    def _library_item(self, drive_id: str, item_id: str) -> DriveFile:
        self._library(drive_id)
        item = self.tenant.files.get(item_id)
        if item is None or item.library != drive_id:
            raise _error(404, "itemNotFound", "The resource could not be found.")
        return item

    def _content(self, item: DriveFile) -> tuple[int, Any, dict[str, str]]:
        """A file's bytes, or what Graph answers for a file it will not serve (`Tenant.blocked`)."""
        blocked = self.tenant.blocked.get(item.id)
        if blocked == "malware":
            raise _error(403, "malwareDetected", "Malware detected in the file; download is blocked.")
        if blocked == "bad_request":
            raise _Reply(400, b"", {"Content-Type": "text/plain"})  # an empty 400, as SharePoint sometimes
        if blocked is not None:
            raise ValueError(f"unknown blocked kind {blocked!r}: malware or bad_request")
        padding = _REWRITE_PADDING if item.id in self.tenant.rewritten else b""
        return 200, item.content + padding, {}

    def _event(self, event: Any) -> dict[str, Any]:
        return self._drifted(event_json(event, text_body=self.text_body, time_zone=self.time_zone))

    def _folder(self, folder_id: str) -> Any:
        if folder_id.lower() in WELL_KNOWN_FOLDERS:  # /me/mailFolders/drafts
            return self.tenant.well_known_folder(folder_id)
        if folder_id not in self.tenant.folders:
            raise _error(404, "ErrorItemNotFound", "The specified folder could not be found in the store.")
        return self.tenant.folders[folder_id]

    def _drifted(self, item: dict[str, Any]) -> dict[str, Any]:
        return {**item, **self.tenant.drift.get(item["id"], {})}

    def _filtered_messages(self, folder_id: str | None = None) -> list[dict[str, Any]]:
        wanted = self.query.get("$filter", "")
        messages = [m for m in self.tenant.messages.values() if folder_id in (None, m.folder_id)]
        if wanted.startswith("conversationId eq "):
            conversation = wanted.removeprefix("conversationId eq ").strip("'").replace("''", "'")
            messages = [m for m in messages if m.conversation_id == conversation]
        elif wanted:
            prop, value = self.extended_filter()
            messages = [m for m in messages if has_extended(m.extended, prop, value)]
        messages.sort(key=lambda m: (m.received, m.id))
        return [self._message(m) for m in messages]

    def _message(self, message: Any) -> dict[str, Any]:
        """A message as Graph renders it, with `$expand=singleValueExtendedProperties(...)` if asked."""
        out = self._drifted(message_json(message, text_body=self.text_body))
        wanted = self.expanded_property()
        if wanted is not None:
            out["singleValueExtendedProperties"] = extended_json(message.extended, wanted)
        return out

    def _list(self, path: str, items: list[dict[str, Any]]) -> tuple[int, Any, dict[str, str]]:
        skip = int(self.query.get("$skip", "0") or 0)
        page = items[skip : skip + self.page_size]
        body: dict[str, Any] = {"@odata.context": f"{self.standin.graph_url}/$metadata", "value": page}
        if skip + self.page_size < len(items):
            rest = {k: v for k, v in self.query.items() if k != "$skip"}
            params = "&".join(f"{quote(k)}={quote(v)}" for k, v in rest.items())
            body["@odata.nextLink"] = (
                f"{self.standin.url}{quote(path)}?{params}{'&' if params else ''}"
                f"$skip={skip + self.page_size}"
            )
        return 200, body, {}

    def _delta(
        self,
        scope: str,
        path: str,
        render: Any,
        extra: dict[str, Any] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        t, q = self.tenant, self.query
        if "$skiptoken" in q or "$deltatoken" in q:
            state = _unb64(q.get("$skiptoken") or q["$deltatoken"])
            if state.get("e") != t.epoch or state.get("s") != scope:
                raise sync_state_gone(self.standin.faults.expired_status)
            if "$deltatoken" in q:
                state = {**state, "q": state["q"], "t": t.seq, "a": "", "i": False}
        else:
            state = {"s": scope, "q": 0, "t": t.seq, "a": "", "i": True, "e": t.epoch, **(extra or {})}
        ids = t.round_ids(scope, state["q"], state["t"], state["a"])
        page_ids = ids[: self.page_size]
        values = [v for v in (render(i, state) for i in page_ids) if v is not None]
        body: dict[str, Any] = {"@odata.context": f"{self.standin.graph_url}/$metadata", "value": values}
        base = f"{self.standin.url}{quote(path)}"
        if len(ids) > self.page_size:
            body["@odata.nextLink"] = f"{base}?$skiptoken={_b64({**state, 'a': page_ids[-1]})}"
        else:
            body["@odata.deltaLink"] = f"{base}?$deltatoken={_b64({**state, 'q': state['t'], 'a': ''})}"
        return 200, body, {}

    def _message_delta(self, folder_id: str, message_id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        message = self.tenant.messages.get(message_id)
        if message is not None and message.folder_id == folder_id:
            return self._drifted(message_json(message, text_body=self.text_body))
        if state["i"]:
            return None
        return {
            "@odata.type": "#microsoft.graph.message",
            "id": message_id,
            "@removed": {"reason": "deleted"},
        }

    def _file_delta(self, item_id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        item = self.tenant.files.get(item_id)
        if item is not None:
            return self._drifted(file_json(self.tenant, item, with_path=not self.omit_paths))
        return None if state["i"] else deleted_file_json(item_id)

    def _calendar_delta(self, path: str) -> tuple[int, Any, dict[str, str]]:
        extra = None
        if "$deltatoken" not in self.query and "$skiptoken" not in self.query:
            try:
                start = datetime.fromisoformat(self.query["startDateTime"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(self.query["endDateTime"].replace("Z", "+00:00"))
            except (KeyError, ValueError) as exc:
                raise _error(
                    400, "ErrorInvalidParameter", "startDateTime and endDateTime are required ISO 8601 values"
                ) from exc
            extra = {"w": [start.timestamp(), end.timestamp()]}

        def render(event_id: str, state: dict[str, Any]) -> dict[str, Any] | None:
            event = self.tenant.events.get(event_id)
            low, high = state["w"]
            if event is not None and low <= event.start.timestamp() < high:
                return self._event(event)
            return (
                None
                if state["i"]
                else {
                    "@odata.type": "#microsoft.graph.event",
                    "id": event_id,
                    "@removed": {"reason": "deleted"},
                }
            )

        return self._delta("calendar", path, render, extra)


class _Admin:
    """`/_standin/...`: see and change the tenant, configure faults (for tests and for people)."""

    def __init__(self, standin: StandIn) -> None:
        self.standin, self.tenant = standin, standin.tenant

    # Complex only by count (C901): one flat `match` over the admin routes, a case per route.
    def dispatch(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Any:  # noqa: C901
        body = json.loads(raw) if raw else {}
        t = self.tenant
        parts = path.strip("/").split("/")
        try:
            match method, parts:
                case "GET", ["state"]:
                    return {
                        "messages": len(t.messages),
                        "folders": len(t.folders),
                        "files": len(t.files),
                        "events": len(t.events),
                        "seq": t.seq,
                        "epoch": t.epoch,
                        "stats": dict(self.standin.stats),
                        "faults": asdict(self.standin.faults),
                    }
                case "GET", ["effects"]:
                    return t.effects(include_gone=query.get("includeGone") == "true")
                case "GET", ["expected"]:
                    return t.expected(
                        max_file_bytes=int(query["maxFileBytes"]) if "maxFileBytes" in query else None
                    )
                case "POST", ["faults"]:
                    self.standin.set_faults(Faults(**body))
                    return asdict(self.standin.faults)
                case "POST", ["expire-delta-links"]:
                    t.expire_delta_links()
                    return {"epoch": t.epoch}
                case "POST", ["revoke-access-tokens"]:
                    self.standin.revoke_access_tokens()
                    return {"revoked": True}
                case "POST", ["approve"]:
                    for flow in self.standin.device_codes.values():
                        if flow["user_code"] == body.get("userCode"):
                            flow["approved"] = True
                            return {"approved": True}
                    raise _error(404, "not_found", "no such user code")
                case "POST", ["messages"]:
                    folder = t.folder(body.get("folder", "Inbox"))
                    m = t.add_message(
                        folder.id,
                        body["subject"],
                        body.get("body", ""),
                        conversation_id=body.get("conversationId"),
                    )
                    return {"id": m.id, "marker": m.marker}
                case "PATCH", ["messages", message_id]:
                    m = t.change_message(
                        message_id,
                        subject=body.get("subject"),
                        body=body.get("body"),
                        is_read=body.get("isRead"),
                    )
                    if "folder" in body:
                        t.move_message(message_id, t.folder(body["folder"]).id)
                    return {"id": m.id, "marker": m.marker}
                case "DELETE", ["messages", message_id]:
                    t.delete_message(message_id)
                    return {"deleted": message_id}
                case "POST", ["files"]:
                    from deskpilot.server.connectors.standin._data import file_content

                    marker = body.get("marker") or "file-" + secrets.token_hex(4)
                    content = file_content(
                        body["name"],
                        body.get("title", body["name"]),
                        f"{body.get('text', '')} Reference {marker}.",
                    )
                    item = t.add_file(body["name"], content, marker=marker)
                    return {"id": item.id, "marker": marker}
                case "DELETE", ["files", item_id]:
                    t.delete_file(item_id)
                    return {"deleted": item_id}
                case "POST", ["events"]:
                    start = datetime.fromisoformat(
                        body.get("start") or (datetime.now(UTC) + timedelta(days=1)).isoformat()
                    )
                    event = t.add_event(body["subject"], body.get("body", ""), start)
                    event.body += f" {event.marker}"
                    return {"id": event.id, "marker": event.marker}
                case "DELETE", ["events", event_id]:
                    t.delete_event(event_id)
                    return {"deleted": event_id}
                case "POST", ["drift"]:
                    t.drift.update(body)
                    return {"drifting": sorted(t.drift)}
                case "DELETE", ["drift"]:
                    t.drift.clear()
                    return {"drifting": []}
        except KeyError as exc:
            raise _error(404, "not_found", f"no such item or field: {exc}") from exc
        raise _error(404, "not_found", f"no admin endpoint {method} /_standin/{path}")


def _auth_handler(handler: _Handler, method: str, path: str, query: dict[str, str], body: bytes) -> None:
    standin = handler.standin
    host = standin.authority_host
    parts = path.strip("/").split("/")
    form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    standin.stats["auth_requests"] += 1
    if parts[:2] == ["common", "discovery"]:
        tenant = urlsplit(query.get("authorization_endpoint", "")).path.strip("/").split("/")[0] or "common"
        raise _Reply(
            200,
            {
                "tenant_discovery_endpoint": f"{host}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [],
            },
        )
    if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
        tenant = parts[0]
        raise _Reply(
            200,
            {
                "issuer": f"{host}/{TENANT_ID}/v2.0",
                "authorization_endpoint": f"{host}/{tenant}/oauth2/v2.0/authorize",
                "token_endpoint": f"{host}/{tenant}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{host}/{tenant}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{host}/{tenant}/oauth2/v2.0/logout",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "standin.test",
            },
        )
    if method == "POST" and parts[1:] == ["oauth2", "v2.0", "devicecode"]:
        device_code, user_code = secrets.token_urlsafe(24), secrets.token_hex(4).upper()
        standin.device_codes[device_code] = {
            "user_code": user_code,
            "client_id": form.get("client_id", ""),
            "scope": form.get("scope", ""),
            "polls": 0,
            "approved": False,
        }
        raise _Reply(
            200,
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": f"{host}/devicelogin",
                "expires_in": 900,
                "interval": 1,
                "message": f"To sign in, use a web browser to open the page {host}/devicelogin and "
                f"enter the code {user_code} to authenticate.",
            },
        )
    if method == "POST" and parts[1:] == ["oauth2", "v2.0", "token"]:
        grant = form.get("grant_type", "")
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            flow = standin.device_codes.get(form.get("device_code", ""))
            if flow is None:
                raise _Reply(
                    400, {"error": "expired_token", "error_description": "unknown or expired device code"}
                )
            flow["polls"] += 1
            if not flow["approved"] and flow["polls"] <= standin.approve_after_polls:
                raise _Reply(
                    400, {"error": "authorization_pending", "error_description": "waiting for the user"}
                )
            del standin.device_codes[form["device_code"]]
            standin.consent(flow["scope"])
            raise _Reply(200, standin.issue_tokens(form.get("client_id", ""), flow["scope"]))
        if grant == "refresh_token":
            if form.get("refresh_token") not in standin.refresh_tokens:
                raise _Reply(
                    400, {"error": "invalid_grant", "error_description": "AADSTS70008: refresh token expired"}
                )
            missing = standin.not_consented(form.get("scope", ""))
            if missing:
                raise _Reply(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "AADSTS65001: The user or administrator has not consented to "
                        f"use the application with ID '{form.get('client_id', '')}' for "
                        f"{' '.join(sorted(missing))}. Send an interactive authorization request for this "
                        "user and resource.",
                        "suberror": "consent_required",
                    },
                )
            standin.stats["refreshes"] += 1
            raise _Reply(200, standin.issue_tokens(form.get("client_id", ""), form.get("scope", "")))
        raise _Reply(400, {"error": "unsupported_grant_type", "error_description": grant})
    raise _Reply(404, {"error": "not_found", "error_description": path})

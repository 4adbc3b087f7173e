"""Graph requests through O365, with the retry policy and payload validation the sync needs.

O365 provides the `Account` (a `Protocol` whose base URL is configurable, so the same code talks to
graph.microsoft.com or to the stand-in) and its `Connection`: the requests session, the bearer token
from our keyring-backed token backend, and the refresh on an expired token. O365's object layer
(`Mailbox`, `Drive`, `Schedule`) cannot do what the sync needs: it has no delta queries for messages,
drive items or events (so no `@removed`, no delta links to resume from), it parses payloads into its
own objects without validating them, and it retries with urllib3's fixed policy. So requests go through
`account.con.oauth_request(...)` ("raw" requests on O365's connection) and every payload is decoded
into the msgspec Structs of `models.py` here.

Retry policy (one place, `_send`): 429 and 503 wait for Retry-After, as long as Graph asks, however
often it asks (Graph's throttling guidance: keep waiting the Retry-After it sends), within the
throttling budget the caller sets (`throttle_budget`, seconds of waiting left for one sync scope): a
wait beyond it raises `Throttled` at once with the wait Graph asked for, so the sync defers that scope
to a later run instead of blocking every other scope behind it. Other 5xx, timeouts, dropped
connections, truncated bodies and malformed JSON back off exponentially with jitter, up to
`graph_max_retries` per request. 410, and any 40X whose code says the sync state is gone
(`syncStateNotFound`, `resyncRequired`, ...: Graph's docs promise "a 40X-series error"), is
`DeltaExpired` (the caller resyncs); 401 gets one forced token refresh; other 4xx are errors, never
retried.

Writes (`request`, `post`, `patch`, `put`, `delete`) go through the same policy, with one difference for
requests that are not idempotent (POST by default, or any request sent with `idempotent=False`): sending
one again after a dropped connection, a read timeout, a 5xx or a garbled answer may make a second draft,
event or task, because Graph may have acted on the first. Those outcomes raise `GraphAmbiguous` at once,
so the caller can look up what exists before it tries again. Retried are only the answers that say the
request was not processed (429, 503 with Retry-After, 401 before a token refresh) and connections that
never opened. A 404 on DELETE means the item is already gone (`delete` returns False).

`GraphTransport` is that surface as a protocol: what the sync and the action adapters need from Graph.
`GraphClient` implements it; its fake is not a Python double but the Graph stand-in (`standin/`), a real
HTTP server on 127.0.0.1, and `tests/contracts/test_graph_transport.py` holds every implementation to one
suite against it.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import msgspec
import requests
from O365 import Account
from O365.connection import MSGraphProtocol
from urllib3.exceptions import NewConnectionError

from deskpilot.server.connectors.auth import SCOPES, SITES_SCOPES, GraphAuth, NotSignedIn
from deskpilot.server.connectors.models import Message, Page, User
from deskpilot.server.settings import Settings

__all__ = [
    "Cancelled",
    "DeltaExpired",
    "GraphAmbiguous",
    "GraphClient",
    "GraphError",
    "GraphProtocol",
    "GraphTransport",
    "GraphUnavailable",
    "ItemDrift",
    "NotFound",
    "PageDrift",
    "Throttled",
    "quote_id",
]

log = logging.getLogger("deskpilot.connectors")
T = TypeVar("T")
_MAX_BACKOFF = 60.0
# Error codes that mean "this delta (or skip) token is no longer valid: start again", in lower case:
# Outlook's (message, event, mailFolder delta) and OneDrive's (driveItem delta, with 410).
RESYNC_CODES = frozenset(
    {
        "syncstatenotfound",
        "syncstateinvalid",
        "resyncrequired",
        "resyncchangesapplydifferences",
        "resyncchangesuploaddifferences",
        "resyncapplydifferences",
        "resyncuploaddifferences",
    }
)
# Properties the sync asks for: smaller pages, and only what `models.py` reads.
MESSAGE_SELECT = (
    "id,subject,body,bodyPreview,from,toRecipients,ccRecipients,receivedDateTime,sentDateTime,"
    "conversationId,parentFolderId,internetMessageId,webLink,changeKey"
)


class GraphError(RuntimeError):
    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class GraphUnavailable(GraphError):
    """Retries exhausted: Graph (or the network) kept failing."""


class NotFound(GraphError):
    pass


class GraphAmbiguous(GraphError):
    """A write that may or may not have been applied: the connection dropped or timed out after the
    request left, or Graph answered 5xx (or a garbled body) to a request that is not idempotent. Look up
    before sending it again."""


class DeltaExpired(GraphError):
    """410 Gone, or a 40X with a resync code: the delta (or next) link is too old; the scope needs a full
    resync."""


class Throttled(GraphError):
    """Graph asked for a wait (Retry-After) longer than the throttling budget left: come back later."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, 429, "TooManyRequests")
        self.retry_after = retry_after


class Cancelled(Exception):
    pass


class PageDrift(GraphError):
    """A page whose envelope does not decode (no `value` list, a link that is not a string)."""

    def __init__(self, message: str, body: bytes) -> None:
        super().__init__(message)
        self.body = body


class ItemDrift(GraphError):
    """One item that does not match its Struct; `raw` is its JSON."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw


def quote_id(item_id: str) -> str:
    """Graph ids hold '/', '+', '=': quote them for a URL path segment."""
    return quote(item_id, safe="")


class GraphTransport(Protocol):
    """Graph requests under one retry policy: typed reads, writes that are never sent twice blindly.

    Raises `NotFound` (404), `DeltaExpired` (410 or a 40X resync code), `GraphError` (other 4xx),
    `Throttled` (a Retry-After beyond `throttle_budget`), `GraphAmbiguous` (a write that may have been
    applied), `GraphUnavailable` (retries exhausted) and `Cancelled`. `stats` counts
    requests, retries and ambiguous outcomes by reason, for sync summaries and tests.
    """

    stats: Counter[str]
    throttle_budget: float | None
    throttle_waited: float

    def get_page(self, url: str, *, params: dict[str, Any] | None = None, prefer: str = "") -> Page: ...

    def pages(
        self, url: str, *, params: dict[str, Any] | None = None, prefer: str = ""
    ) -> Iterator[Page]: ...

    def get_item(
        self, url: str, kind: type[T], *, params: dict[str, Any] | None = None, prefer: str = ""
    ) -> T: ...

    def download(self, url: str, expected_size: int | None = None) -> bytes: ...

    def post(
        self, url: str, json: Any = None, *, params: dict[str, Any] | None = None, idempotent: bool = False
    ) -> dict[str, Any]: ...

    def put(
        self,
        url: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]: ...

    def delete(self, url: str) -> bool:
        """True if deleted now, False if it was already gone."""
        ...

    def close(self) -> None: ...


class GraphProtocol(MSGraphProtocol):  # type: ignore[misc]  # O365 has no types: the base is Any
    """O365's Graph protocol with the base URL from settings (`https://graph.microsoft.com/v1.0`, or the
    stand-in's `http://127.0.0.1:N/v1.0`)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        root, _, version = base_url.rstrip("/").rpartition("/")
        self._protocol_url = root + "/"  # read by MSGraphProtocol.__init__ instead of the class default
        super().__init__(api_version=version, timezone="UTC", **kwargs)


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether a request surely never reached the server: no connection was made (refused, no such
    host, connect timeout). Anything later, a reset or a read timeout, leaves the outcome unknown."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(getattr(cause, "reason", cause), NewConnectionError)  # urllib3's MaxRetryError wraps it


def _o365_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """O365 looks for the exact key "Content-type" (and adds application/json when it is missing)."""
    return {("Content-type" if k.lower() == "content-type" else k): v for k, v in (headers or {}).items()}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


class GraphClient:
    """Graph over O365's connection. Thread-compatible, not thread-safe: one per sync run.

    Requests to SharePoint sites (`/sites/...`, `/me/followedSites`) carry a Sites.Read.All token, all
    others the SCOPES one (see `auth.SITES_SCOPES`): when the sign-in holds no consent for Sites.Read.All,
    those requests raise `auth.ConsentRequired` and every other request goes on as before."""

    def __init__(
        self,
        auth: GraphAuth,
        settings: Settings,
        *,
        cancel: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.auth, self.settings = auth, settings
        self.protocol = GraphProtocol(settings.graph_base_url)
        # request_retries=0 and raise_http_errors=False: `_send` is the one retry policy and sees every
        # status. requests_delay=0: O365's default 200 ms pause between calls would double a sync's time.
        self.account = Account(
            settings.graph_client_id,
            auth_flow_type="public",
            tenant_id=settings.graph_tenant,
            protocol=self.protocol,
            token_backend=auth.backend,
            request_retries=0,
            raise_http_errors=False,
            requests_delay=0,
            timeout=settings.graph_timeout_seconds,
            default_headers={"Prefer": 'IdType="ImmutableId"'},
        )
        self.cancel = cancel or threading.Event()
        self.rng = rng or random.Random()
        self.stats: Counter[str] = Counter()
        # Seconds of Retry-After waiting still allowed (None: no limit); the sync sets it per scope.
        self.throttle_budget: float | None = None
        self.throttle_waited = 0.0  # seconds spent waiting for Retry-After, over the client's life
        self._authorized: tuple[str, ...] = ()  # the scopes of the token on the session, once authorized

    def url(self, path: str) -> str:
        return (
            path if path.startswith(("http://", "https://")) else self.protocol.service_url + path.lstrip("/")
        )

    def close(self) -> None:
        con = self.account.con
        for session in (con.session, con.naive_session):
            if session is not None:
                session.close()

    # -- the retry policy -------------------------------------------------------------------------------

    def _authorize(self, scopes: tuple[str, ...], *, force: bool = False) -> None:
        token = self.auth.access_token(force_refresh=force, scopes=scopes)
        con = self.account.con
        if con.session is None:
            con.session = con.get_session(load_token=False)
        con.update_session_auth_header(access_token=token)
        self._authorized = scopes

    @staticmethod
    def _scopes_for(url: str) -> tuple[str, ...]:
        """The token a request needs: Sites.Read.All for SharePoint sites, SCOPES for everything else
        (a library's own `/drives/{id}/...` requests need only Files.*)."""
        path = urlsplit(url).path
        if "/sites/" in path or path.endswith("/sites") or path.endswith("/followedSites"):
            return tuple(SITES_SCOPES)
        return tuple(SCOPES)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(_MAX_BACKOFF, self.settings.graph_backoff_seconds * 2.0**attempt)
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)  # "equal jitter": never 0, never in lockstep

    def _wait(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled

    def _send(  # noqa: C901 - the one retry policy, every branch of it in one place
        self,
        url: str,
        *,
        method: str = "get",
        params: dict[str, Any] | None = None,
        prefer: str = "",
        decode: Any = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Send `method url` under the retry policy; `decode(response)` runs inside it, so a truncated or
        malformed body is retried like a dropped connection (or is ambiguous, for a write that is not
        idempotent). `body` holds requests' `json` or `data` argument."""
        url = self.url(url)
        scopes = self._scopes_for(url)
        if self._authorized != scopes:
            self._authorize(scopes)
        headers = _o365_headers(headers)
        if prefer:
            headers["Prefer"] = prefer
        refreshed = False
        attempt = throttles = 0
        while True:
            if self.cancel.is_set():
                raise Cancelled
            self.stats["requests"] += 1
            reason, delay = "", 0.0
            try:
                response = self.account.con.oauth_request(
                    url, method, params=params, headers=dict(headers), **(body or {})
                )
                status = response.status_code
                if status < 400:
                    return decode(response) if decode else response
                if status == 401 and not refreshed:
                    # O365 refreshes only tokens past their expiry; one revoked early needs a forced refresh.
                    refreshed = True
                    self.stats["token_refreshes"] += 1
                    self._authorize(scopes, force=True)
                    continue
                if status == 401:
                    raise NotSignedIn("Microsoft 365 refused the sign-in: run `deskpilot login` again")
                code, message = self._error_body(response)
                if status == 410 or (status < 500 and code.lower() in RESYNC_CODES):
                    raise DeltaExpired(f"{code or 'Gone'}: {message}", status, code)
                if status == 404:
                    raise NotFound(f"{code or 'NotFound'}: {message}", status, code)
                if status == 429 or (status == 503 and response.headers.get("Retry-After")):
                    # Not processed: safe to send again, write or not. Not counted against
                    # graph_max_retries: Graph says how long to wait, and the budget bounds the total.
                    self._throttle_wait(url, _retry_after(response) or self._backoff(throttles))
                    throttles += 1
                    continue
                elif status >= 500 and not idempotent:
                    raise self._ambiguous(method, url, f"http_{status}", status, code)
                elif status >= 500:
                    reason, delay = f"http_{status}", self._backoff(attempt)
                else:
                    raise GraphError(f"Graph answered {status} {code}: {message}", status, code)
            except requests.RequestException as exc:  # refused, reset, dropped, timed out, truncated body
                reason = "timeout" if isinstance(exc, requests.Timeout) else "connection"
                if not idempotent and not _never_sent(exc):
                    raise self._ambiguous(method, url, reason) from exc
                delay = self._backoff(attempt)
                log.debug("request failed: %s", type(exc).__name__)
            except _Malformed as exc:
                if not idempotent:
                    raise self._ambiguous(method, url, "malformed") from exc
                reason, delay = "malformed", self._backoff(attempt)
            self.stats[f"retry:{reason}"] += 1
            attempt += 1
            if attempt > self.settings.graph_max_retries:
                raise GraphUnavailable(
                    f"Graph kept failing ({reason}) after {attempt} attempts: {_path(url)}"
                )
            log.info("Graph %s on %s; retry %d in %.2f s", reason, _path(url), attempt, delay)
            self._wait(delay)

    def _throttle_wait(self, url: str, delay: float) -> None:
        """Wait as Graph asked, or raise `Throttled` when that is beyond the budget left."""
        self.stats["retry:throttled"] += 1
        budget = self.throttle_budget
        if budget is not None and delay > budget:
            raise Throttled(f"Graph asks to wait {delay:.0f} s on {_path(url)}; {budget:.0f} s left", delay)
        if budget is not None:
            self.throttle_budget = budget - delay
        log.info("Graph throttled on %s; waiting %.2f s as asked", _path(url), delay)
        self.throttle_waited += delay
        self._wait(delay)

    def _ambiguous(
        self, method: str, url: str, reason: str, status: int | None = None, code: str = ""
    ) -> GraphAmbiguous:
        self.stats[f"ambiguous:{reason}"] += 1
        log.info(
            "Graph %s on %s %s: it may have been applied; not sent again", reason, method.upper(), _path(url)
        )
        return GraphAmbiguous(
            f"{method.upper()} {_path(url)} may or may not have been applied ({reason})", status, code
        )

    @staticmethod
    def _error_body(response: requests.Response) -> tuple[str, str]:
        try:
            error = msgspec.json.decode(response.content).get("error", {})
            return str(error.get("code", "")), str(error.get("message", ""))[:300]
        except (msgspec.DecodeError, AttributeError):
            return "", response.reason or ""

    # -- typed calls ------------------------------------------------------------------------------------

    def get_page(self, url: str, *, params: dict[str, Any] | None = None, prefer: str = "") -> Page:
        prefer = ", ".join(p for p in (f"odata.maxpagesize={self.settings.graph_page_size}", prefer) if p)

        def decode(response: requests.Response) -> Page:
            body = response.content
            try:
                return msgspec.json.decode(body, type=Page)
            except msgspec.ValidationError as exc:
                raise PageDrift(f"page does not match the Graph collection shape: {exc}", body) from exc
            except msgspec.DecodeError as exc:
                raise _Malformed from exc

        page: Page = self._send(url, params=params, prefer=prefer, decode=decode)
        self.stats["pages"] += 1
        return page

    def pages(self, url: str, *, params: dict[str, Any] | None = None, prefer: str = "") -> Iterator[Page]:
        page = self.get_page(url, params=params, prefer=prefer)
        yield page
        while page.next_link:
            page = self.get_page(page.next_link, prefer=prefer)
            yield page

    def get_item(
        self, url: str, kind: type[T], *, params: dict[str, Any] | None = None, prefer: str = ""
    ) -> T:
        def decode(response: requests.Response) -> T:
            try:
                msgspec.json.decode(response.content)
            except msgspec.DecodeError as exc:
                raise _Malformed from exc
            return decode_item(response.content, kind)

        # _send returns what `decode` returns; it is typed Any.
        return self._send(url, params=params, prefer=prefer, decode=decode)  # type: ignore[no-any-return]

    def download(self, url: str, expected_size: int | None = None) -> bytes:
        """A file's bytes. `expected_size` (the item's `size`) is not held against them: SharePoint
        rewrites Office and PDF files as it serves them (metadata written in), so their byte count differs
        from `size` while the content is whole. A body cut short is caught by its Content-Length
        (urllib3 enforces it) and retried like a dropped connection."""

        def decode(response: requests.Response) -> bytes:
            content: bytes = response.content
            if expected_size is not None and len(content) != expected_size:
                log.debug("%s: %d bytes served, size says %d", _path(url), len(content), expected_size)
            return content

        return self._send(url, decode=decode)  # type: ignore[no-any-return]  # what `decode` returns

    def me(self) -> User:
        return self.get_item("me", User)

    # -- writes -----------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        decode: Any = None,
    ) -> Any:
        """Any request under the retry policy: the response (2xx or 3xx), or `decode(response)`.

        `idempotent` defaults to False for POST and True otherwise (GET, PUT, PATCH with absolute values,
        DELETE); pass False for a request that must not be repeated blindly (a PUT with
        conflictBehavior=fail, a PATCH that appends). Raises NotFound, GraphError (other 4xx),
        GraphAmbiguous (see the module docstring), GraphUnavailable (retries exhausted) or Cancelled."""
        body: dict[str, Any] = {}
        if json is not None:
            body["json"] = json  # requests encodes it; O365 only rewrites `data`
        if data is not None:
            body["data"] = data
        return self._send(
            url,
            method=method.lower(),
            params=params,
            headers=headers,
            body=body,
            decode=decode,
            idempotent=method.upper() != "POST" if idempotent is None else idempotent,
        )

    def post(
        self, url: str, json: Any = None, *, params: dict[str, Any] | None = None, idempotent: bool = False
    ) -> dict[str, Any]:
        """POST JSON; the JSON object Graph answered with ({} for an empty answer)."""
        return self.request(  # type: ignore[no-any-return]  # what `decode` returns
            "POST",
            url,
            params=params,
            json=json if json is not None else {},
            idempotent=idempotent,
            decode=_json_object,
        )

    def put(
        self,
        url: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """PUT bytes (a file's content); the JSON object Graph answered with."""
        if content_type.strip().lower() == "application/json":
            content_type += (
                "; charset=utf-8"  # O365 would json.dumps() bytes sent as exactly application/json
            )
        return self.request(  # type: ignore[no-any-return]  # what `decode` returns
            "PUT",
            url,
            params=params,
            data=data,
            headers={"Content-Type": content_type},
            idempotent=idempotent,
            decode=_json_object,
        )

    def delete(self, url: str) -> bool:
        """DELETE `url`: True if it was deleted now, False if it was already gone (404)."""
        try:
            self.request("DELETE", url)
        except NotFound:
            return False
        return True

    def conversation(self, conversation_id: str) -> list[Message]:
        """Every message of a conversation, oldest first, bodies as text (for thread summaries)."""
        escaped = conversation_id.replace("'", "''")
        messages: list[Message] = []
        for page in self.pages(
            "me/messages",
            params={"$filter": f"conversationId eq '{escaped}'", "$select": MESSAGE_SELECT},
            prefer='outlook.body-content-type="text"',
        ):
            for raw in page.value:
                try:
                    messages.append(decode_item(raw, Message))
                except ItemDrift as exc:
                    log.warning(
                        "skipping a message of conversation %s that does not match the schema: %s",
                        conversation_id[:16],
                        exc,
                    )
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(messages, key=lambda m: m.received_date_time or m.sent_date_time or epoch)


class _Malformed(Exception):
    """A body that is not the JSON (or the bytes) it should be: retried like a dropped connection."""


def _json_object(response: requests.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        value = msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        raise _Malformed from exc
    if not isinstance(value, dict):
        raise _Malformed(f"expected a JSON object, got {type(value).__name__}")
    return value


def decode_item(raw: bytes | msgspec.Raw, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        raise ItemDrift(f"{kind.__name__} does not match the schema: {exc}", bytes(raw)) from exc


def _path(url: str) -> str:
    """The URL without its query: delta and skip tokens are long and say nothing to a reader."""
    return url.split("?", 1)[0]

"""Who may use the server, checked before any route runs: a server on localhost is reachable by every
process on the machine and by every web page the user opens.

Two walls, one pass over the headers (`Guard.refusal`):
1. Where the request comes from (against web pages and DNS rebinding):
   - exactly one Host, parsed as RFC 9110/3986 say (a name or an IP literal, then at most `:digits`), naming
     a loopback name this server answers on: localhost, 127.0.0.1, [::1] and the address it was configured
     to listen on (`serve --host 127.0.0.2`). A missing, repeated or malformed Host is 400, another name 403;
   - at most one Origin, and if present exactly this server's own origin (the task pane is served from
     it); a foreign or "null" Origin is another site trying to use the user's assistant: 403;
   - `Sec-Fetch-Site: cross-site` (any case) is refused too: it covers requests where a browser omits Origin.
2. Who sends it (against every other local process and user): `Authorization: Bearer <token>`, the
   per-user secret in the app data folder (server/core/token.py), compared in constant time; 401 with
   `WWW-Authenticate: Bearer` without it. Open without the token, for GET and HEAD only:
   - `/healthz`: liveness for the installer, autostart and monitors; it says "ok", a version and whether
     the model loaded, nothing about the user;
   - `/taskpane` and everything under it: the pane's HTML, scripts and the add-in icons. Office loads them
     by URL and cannot add a header; they are the same for every user and hold no secret (the token
     reaches the pane in its start URL's query, which the pane moves to sessionStorage);
   - `/dashboard` and everything under it: the compliance and IT dashboard's HTML and scripts, for the
     same reason. They hold no data: the page fetches `/v1/dashboard` with the token, which `deskpilot
     dashboard` gives it in the URL fragment (`#token=...`, which a browser never sends to a server);
   - `/`: the add-in's support URL, a redirect to the pane.
   Everything else needs the token, the OpenAPI document (`/openapi`) included: it maps the attack surface,
   and the pane's types are generated from it at build time, never fetched at run time.
Refusals use the API's one error body (`ErrorBody`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

import msgspec
from litestar.enums import ScopeType
from litestar.openapi.spec import SecurityScheme
from litestar.types import ASGIApp, Receive, Scope, Send

from deskpilot.server.core.token import TokenFile
from deskpilot.server.core.wire import ErrorBody

__all__ = ["LOOPBACK_HOSTS", "TOKEN_SCHEME", "Guard", "Refusal", "canonical_host", "local_only"]

# The names every server answers on, whichever loopback address it listens on.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

# RFC 3986 authority without userinfo: an IP literal in brackets or a name, then optionally ":" *DIGIT.
_AUTHORITY = re.compile(r"(\[[^\[\]/@]*\]|[^\[\]:/@]*)(?::([0-9]*))?")
_WATCHED = frozenset({b"host", b"origin", b"sec-fetch-site", b"authorization"})
_OPEN_METHODS = frozenset({"GET", "HEAD"})
_BEARER = b"bearer "


# How the OpenAPI document describes the token (app.py); /healthz opts out with `security=[{}]`.
TOKEN_SCHEME = SecurityScheme(
    type="http",
    scheme="bearer",
    description="The per-user token in the app data folder (`deskpilot token show --path`); "
    "the task pane gets it from its add-in manifest.",
)


class Refusal(msgspec.Struct, frozen=True):
    status: int
    code: str
    message: str


def canonical_host(host: str) -> str | None:
    """The host name of a Host header value (`localhost`, `127.0.0.1`, `::1`), or None when it is malformed:
    a port that is not digits, text after an IP literal, an empty name, an IPv4 address with leading zeros."""
    match = _AUTHORITY.fullmatch(host.strip())
    if match is None:
        return None
    name, port = match.group(1).lower(), match.group(2)
    if port and int(port) > 65535:
        return None
    if name.startswith("["):
        try:
            return str(ipaddress.IPv6Address(name[1:-1]))
        except ValueError:
            return None
    if name and name.replace(".", "").isdigit():
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            return None
    return name or None


def _origin(scheme: str, name: str, port: int) -> set[str]:
    host = f"[{name}]" if ":" in name else name
    default = {"http": 80, "https": 443}[scheme]
    return {f"{scheme}://{host}:{port}"} | ({f"{scheme}://{host}"} if port == default else set())


class Guard:
    """Both walls for one server: where requests come from (Host, Origin, fetch metadata) and who sends
    them (the token). `refusal(scope)` decides; `middleware` applies it in front of the app."""

    def __init__(self, *, scheme: str, port: int, host: str, token: TokenFile) -> None:
        configured = canonical_host(host) or host.strip("[]").lower()
        self.hosts = LOOPBACK_HOSTS | {configured}
        self.origins = frozenset(o for name in self.hosts for o in _origin(scheme, name, port))
        self.token = token

    def refusal(self, scope: Scope) -> Refusal | None:
        found: dict[bytes, list[bytes]] = {}
        for name, value in scope["headers"]:
            if name in _WATCHED:
                found.setdefault(name, []).append(value)
        problem = self._where(found)
        if problem is not None or self._open(scope):
            return problem
        return self._who(found.get(b"authorization", []))

    def _where(self, found: dict[bytes, list[bytes]]) -> Refusal | None:
        hosts = found.get(b"host", [])
        if len(hosts) != 1:
            return Refusal(400, "invalid_host", f"a request needs exactly one Host header, not {len(hosts)}")
        host = hosts[0].decode("latin-1")
        name = canonical_host(host)
        if name is None:
            return Refusal(400, "invalid_host", f"Host {host!r} is not a valid host[:port]")
        if name not in self.hosts:
            return Refusal(
                403,
                "forbidden_host",
                f"Host {host!r} is not this computer; Deskpilot only answers on localhost",
            )
        origins = found.get(b"origin", [])
        if len(origins) > 1:
            return Refusal(403, "forbidden_origin", "a request may carry one Origin header, not several")
        if origins and origins[0].decode("latin-1").lower() not in self.origins:
            origin = origins[0].decode("latin-1")
            return Refusal(
                403, "forbidden_origin", f"Origin {origin!r} may not use this server; only its own pages may"
            )
        if any(v.strip().lower() == b"cross-site" for v in found.get(b"sec-fetch-site", [])):
            return Refusal(403, "forbidden_origin", "cross-site requests may not use this server")
        return None

    @staticmethod
    def _open(scope: Scope) -> bool:
        """The routes that load without the token (see the module docstring for why these)."""
        if scope["type"] != ScopeType.HTTP or scope["method"] not in _OPEN_METHODS:
            return False
        path: str = scope["path"]
        if path in ("/healthz", "/", "/taskpane", "/dashboard"):
            return True
        # No dot segments or empty ones: "/taskpane/../v1/runs" must not pass as a pane file.
        return path.startswith(("/taskpane/", "/dashboard/")) and "/." not in path and "//" not in path

    def _who(self, authorization: list[bytes]) -> Refusal | None:
        if len(authorization) == 1 and authorization[0][:7].lower() == _BEARER:
            if self.token.matches(authorization[0][7:].strip()):
                return None
            return Refusal(
                401,
                "unauthorized",
                "the access token is not valid (it may have been rotated with `deskpilot token rotate`): "
                "close and reopen the Deskpilot add-in, or read the token file again",
            )
        return Refusal(
            401,
            "unauthorized",
            "this request needs Deskpilot's access token (Authorization: Bearer <token>): the CLI reads it "
            "from the app data folder, the task pane gets it from its add-in manifest",
        )

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in (ScopeType.HTTP, ScopeType.WEBSOCKET):
                refusal = self.refusal(scope)
                if refusal is not None:
                    if scope["type"] == ScopeType.WEBSOCKET:
                        await send({"type": "websocket.close", "code": 1008, "reason": ""})
                    else:
                        await _refuse(send, refusal)
                    return
            await app(scope, receive, send)

        guarded.__wrapped__ = app  # type: ignore[attr-defined]  # inspect.unwrap's convention, for the bench
        return guarded


def local_only(scheme: str, port: int, host: str, token: TokenFile) -> Callable[[ASGIApp], ASGIApp]:
    """The Litestar middleware: `Guard(...).middleware`."""
    return Guard(scheme=scheme, port=port, host=host, token=token).middleware


async def _refuse(send: Send, refusal: Refusal) -> None:
    body = msgspec.json.encode(ErrorBody(code=refusal.code, message=refusal.message))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="deskpilot"'))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})

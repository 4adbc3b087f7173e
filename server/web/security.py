"""Local-only request checks: a server on localhost is reachable by every web page the user opens.

- Host must be a loopback name (localhost, 127.0.0.1, [::1]); anything else is DNS rebinding: 403.
- Origin, when present, must be this server's own origin (the task pane is served from it); a foreign or
  "null" Origin is another site trying to use the user's assistant: 403.
- `Sec-Fetch-Site: cross-site` is refused too, which also covers requests where a browser omits Origin.
Requests without Origin (the CLI, curl, Office's own fetches of the manifest icons) are allowed: only
browsers attach ambient authority, and browsers always say where they come from.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "local_only"]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8765
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


def own_origins(scheme: str, port: int) -> frozenset[str]:
    return frozenset(f"{scheme}://{host}:{port}" for host in LOOPBACK_HOSTS)


def local_only(scheme: str, port: int) -> Callable[[ASGIApp], ASGIApp]:
    origins = own_origins(scheme, port)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def check(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket"):
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                problem = _problem(headers, origins)
                if problem is not None and scope["type"] == ScopeType.WEBSOCKET:
                    await send({"type": "websocket.close", "code": 1008, "reason": ""})
                    return
                if problem is not None:
                    await _forbid(send, *problem)
                    return
            await app(scope, receive, send)

        return check

    return middleware


def _problem(headers: dict[str, str], origins: frozenset[str]) -> tuple[str, str] | None:
    host = headers.get("host", "")
    if _host_name(host) not in LOOPBACK_HOSTS:
        return "forbidden_host", f"Host {host!r} is not this computer; Deskpilot only answers on localhost"
    origin = headers.get("origin")
    if origin is not None and origin.lower().rstrip("/") not in origins:
        return "forbidden_origin", f"Origin {origin!r} may not use this server; only its own pages may"
    if headers.get("sec-fetch-site") == "cross-site":
        return "forbidden_origin", "cross-site requests may not use this server"
    return None


async def _forbid(send: Send, code: str, message: str) -> None:
    body = msgspec.json.encode({"code": code, "message": message})
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})

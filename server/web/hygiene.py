"""HTTP hygiene the app enforces itself (the request head's limits are in web/runner.py, in the HTTP parser).

- JSON nesting: msgspec decodes recursively, and a body nested about a thousand levels deep raised
  `RecursionError` (a 500). `limited_request(max_depth)` is the app's request class: before its body is
  decoded as JSON, a scan counts how deep its arrays and objects nest, and deeper than `max_depth` (the
  `max_json_depth` setting, 64) is a 400. No request of this API needs more than a few levels.
- Strict bodies: Litestar decodes a body to Python objects and converts them to the handler's Struct
  leniently, as it must for query strings: `"sentences": "3"` passed as 3, `"until": 0` as 1970. The same
  request class converts a body whose type is a Struct strictly, as the OpenAPI document says
  (web/openapi.py): a string is not a number, a number is not a date; a number is a number, `8.0` an
  integer. Its errors are the 400s Litestar's would be (`ValidationException`, with the field at fault).
- A NUL byte in the path (`/taskpane/%00`) names no route or file, and the operating system refuses it in a
  file name (the static files raised `ValueError`, a 500): `refuse_nul_paths` answers 400 first.
- `OPTIONS`: Litestar 2 answers it with the methods of the first handler registered on a path only
  (litestar-org/litestar#4169, fixed in Litestar 3), so `OPTIONS /v1/workflows` said `GET, OPTIONS` though
  POST works too. `complete_allow` puts every method of the path in `Allow`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.enums import ScopeType
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.types.empty import Empty

from deskpilot.server.core.wire import ErrorBody
from deskpilot.server.web.errors import ApiError

__all__ = ["JsonTooDeep", "complete_allow", "json_depth_exceeds", "limited_request", "refuse_nul_paths"]

# A JSON string, escapes included: brackets inside strings do not nest anything.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")


class JsonTooDeep(ApiError):
    status_code = 400
    code = "invalid_request"


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the arrays and objects of a JSON text nest deeper than `limit` (a text that is not JSON
    answers something; its decoding fails next anyway)."""
    if body.count(b"[") + body.count(b"{") <= limit:  # the common case: too few to nest that deep
        return False
    depth = 0
    for byte in _STRING.sub(b'""', body).translate(None, _NOT_BRACKETS):
        if byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def limited_request(max_depth: int) -> type[Request[Any, Any, Any]]:
    """The app's request class: `Request` whose JSON body may nest at most `max_depth` levels, decoded
    strictly where the handler takes a Struct (see the module docstring)."""

    class LimitedRequest(Request[Any, Any, Any]):
        async def json(self) -> Any:
            if self._json is Empty and self._connection_state.json is Empty:
                body = await self.body()
                if json_depth_exceeds(body, max_depth):
                    raise JsonTooDeep(f"invalid request: JSON nested deeper than {max_depth} levels")
                kind = _body_type(self.route_handler)
                if kind is not None:
                    self._json = self._connection_state.json = _decode_strictly(body, kind)
            return await super().json()

    return LimitedRequest


_BODY_TYPES: dict[HTTPRouteHandler, Any] = {}


def _body_type(handler: HTTPRouteHandler) -> Any:
    """The Struct (or Struct | None) a handler takes as its body, else None."""
    if handler not in _BODY_TYPES:
        data = handler.parsed_fn_signature.parameters.get("data")
        kinds = [] if data is None else [t for t in (data.inner_types if data.is_union else (data,))]
        structs = [k for k in kinds if k.is_subclass_of(msgspec.Struct)]
        plain = data is not None and structs and all(k in structs or k.is_none_type for k in kinds)
        _BODY_TYPES[handler] = data.annotation if plain and data is not None else None
    return _BODY_TYPES[handler]


def _decode_strictly(body: bytes, kind: Any) -> Any:
    try:
        raw = msgspec.json.decode(body or b"null")
    except msgspec.DecodeError:
        return Empty  # not JSON at all: Litestar's own decoding answers
    try:
        return msgspec.convert(_integral(raw), kind, strict=True)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        error: dict[str, str] = {"message": message, "source": "body"}
        if where:
            error["key"] = where.rstrip("`").removeprefix(".")
        raise ValidationException(detail=f"invalid request: {message}", extra=[error]) from exc


def _integral(node: Any) -> Any:
    """JSON has numbers, not ints and floats: `8.0` is the integer 8 (as JSON Schema says), and strict
    msgspec would refuse it where an int is expected. Integral floats become ints (an int is fine where a
    float is expected)."""
    if isinstance(node, float) and node.is_integer():
        return int(node)
    if isinstance(node, dict):
        return {key: _integral(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_integral(value) for value in node]
    return node


def refuse_nul_paths(app: ASGIApp) -> ASGIApp:
    """Middleware: 400 for a path with a NUL byte in it, before any route (or the file system) sees it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and "\x00" in scope["path"]:
            body = msgspec.json.encode(ErrorBody(code="invalid_path", message="a path may not contain NUL"))
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await app(scope, receive, send)

    return middleware


def complete_allow(app: ASGIApp) -> ASGIApp:
    """Middleware: `Allow` in the answer to OPTIONS lists every method of the path (see the docstring)."""
    allowed: dict[str, bytes] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "OPTIONS":
            await app(scope, receive, send)
            return
        if not allowed:
            litestar: Litestar = scope["litestar_app"]
            for route in litestar.routes:
                if isinstance(route, HTTPRoute):
                    allowed[route.path_format] = ", ".join(sorted(route.methods)).encode()
        methods = allowed.get(scope["path_template"])  # set by the router: this runs once a route matched

        async def send_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and methods is not None:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", methods)]}
            await send(message)

        await app(scope, receive, send_allow)

    return middleware

"""The OpenAPI document (GET /openapi) as the server behaves: Litestar's document, completed in one place.

The task pane's TypeScript types are generated from this document (taskpane/scripts/openapi_dump.py) and
the fuzz test (tests/test_fuzz.py) holds the server to it, so what it says must be what the server does.
Litestar's own document gets four things wrong, put right here:
- Errors. Litestar documents its own 400 body (`status_code`, `detail`) and nothing else; every error here
  answers `ErrorBody` (web/errors.py). Each operation lists the statuses it can answer (`_answers`): those
  its shape implies (400 and 403 from the Host and Origin checks on every operation, 401 where the token is
  needed, 404 where the path names something, 413 where there is a body) and those of its feature
  (`_FEATURE_ERRORS`: 409 for a conflict, 429 and 503 from the model, ...). They point at shared responses
  in `components.responses`.
- Server-sent events. A handler returning `ServerSentEvent` was documented as `application/json` with an
  empty schema; it answers `text/event-stream`. OpenAPI 3.1 cannot describe the events in a stream, so its
  media type carries `x-sse-events` (event name -> the schema of its `data`), and the document a map of
  every event (`x-sse-events` at the top, which the pane's types are generated from).
- Schemas. Litestar writes its own schemas of the msgspec Structs and loses what msgspec checks: that
  unknown fields are rejected (`forbid_unknown_fields`, a 400), the limits of a list's items, a field's
  `Meta(extra_json_schema=...)`. The schemas of every Struct in the document are msgspec's own
  (`msgspec.json.schema_components`), from the library that validates the requests, so they agree with
  it: `additionalProperties: false` where unknown fields are rejected, integer bounds as integers. A
  datetime, which msgspec writes as any string, gets the pattern of what msgspec decodes (`_DATETIME`; not
  `format: date-time`, which would refuse the datetimes without an offset that the API takes as UTC).
- Exactly one of. A request that takes `text` or `email`, not both and not neither (`In.exactly_one_of`),
  gets a `oneOf` with one branch per field.
- Checks beyond the fields. What a struct's `__post_init__` or its handler checks besides its fields'
  types is in the struct's `json_schema_extra` (core/wire.py `In`), merged into its schema, so that a
  request the document calls valid is one the server accepts (the fuzz test checks both ways).
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.response import ServerSentEvent
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

from deskpilot.server.core.wire import ErrorBody
from deskpilot.server.web.sse import EVENT_NAMES

__all__ = ["openapi_config", "openapi_document"]

_SCHEMAS = "#/components/schemas/"
_RESPONSES = "#/components/responses/"

# Every error response, by status: its name in `components.responses`, what it means, and its headers.
_ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "The request is not valid: a field or parameter (`field` says which), JSON that does not parse or "
        "nests too deep, a path with a NUL byte, or a malformed Host header",
    ),
    401: ("Unauthorized", "No valid access token: send `Authorization: Bearer <token>`"),
    403: (
        "Forbidden",
        "Refused: a Host that is not this computer, a foreign Origin or a cross-site request; for some "
        "operations also what this user may not do (the operation says what)",
    ),
    404: ("NotFound", "What the path names does not exist"),
    409: ("Conflict", "The request conflicts with the current state (the message says how)"),
    413: ("ContentTooLarge", "The request body, or the input it gives the model, is too large"),
    429: ("Busy", "The model is busy and its queue is full: retry after `Retry-After` seconds"),
    502: ("BadGateway", "Microsoft 365 could not be reached"),
    503: ("Unavailable", "The model (or the document index) is not available: retry after `Retry-After`"),
}
_MODEL = (429, 503)

# What an operation answers beyond what its shape implies (see `_answers`), by method and path.
_FEATURE_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/v1/summarize"): _MODEL,
    ("POST", "/v1/draft-reply"): _MODEL,
    ("POST", "/v1/rewrite"): _MODEL,
    ("POST", "/v1/ask"): _MODEL,
    ("POST", "/v1/extract"): _MODEL,
    ("POST", "/v1/classify"): (*_MODEL, 413),
    ("POST", "/v1/index"): (409,),
    ("POST", "/v1/sync"): (409,),
    ("GET", "/v1/mail/conversation/{conversation_id}"): (409, 502),
    ("POST", "/v1/actions/{action_id}/approve"): (409,),
    ("POST", "/v1/actions/{action_id}/reject"): (409,),
    ("POST", "/v1/actions/{action_id}/retry"): (409,),
    ("POST", "/v1/reviews/{review_id}"): (409,),
    ("POST", "/v1/workflows"): (404, 409),
    ("POST", "/v1/drift/rebaseline"): (404,),
    ("PUT", "/v1/automations/{name}"): (409,),
}

# The events each stream sends (`error` ends any stream early, e.g. when the server stops).
_TEXT_EVENTS = ("meta", "token", "done", "error")
_STREAM_EVENTS: dict[str, tuple[str, ...]] = {
    "/v1/summarize": ("meta", "token", "grounded", "done", "error"),
    "/v1/ask": ("meta", "token", "grounded", "sources", "done", "error"),
    "/v1/extract": ("meta", "progress", "token", "result", "done", "error"),
}


class _DocumentPlugin(JsonRenderPlugin):
    """Serves `openapi_document(app)` at /openapi and /openapi/openapi.json, built once."""

    def __init__(self) -> None:
        super().__init__()
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = self.render_json(request, openapi_document(request.app))
        return self._rendered


def openapi_config(**kwargs: Any) -> OpenAPIConfig:
    """Litestar's OpenAPI configuration, serving `openapi_document` at /openapi."""
    return OpenAPIConfig(path="/openapi", render_plugins=[_DocumentPlugin()], **kwargs)


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The app's OpenAPI document as a dict, completed as the module docstring says."""
    document = copy.deepcopy(app.openapi_schema.to_schema())
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    structs = _nested(_structs(app))
    extras: dict[type[msgspec.Struct], Any] = {}
    while missing := [struct for struct in structs if struct not in extras]:
        for struct in missing:  # a type a `json_schema_extra` names joins the document
            extras[struct] = _with_refs(getattr(struct, "json_schema_extra", {}), structs)
        structs = _nested(structs)
    every = sorted({ErrorBody, *EVENT_NAMES, *structs}, key=lambda t: t.__name__)
    refs, exact = msgspec.json.schema_components(every, ref_template=_SCHEMAS + "{name}")
    renamed = [t for t, ref in zip(every, refs, strict=True) if ref["$ref"] != _SCHEMAS + t.__name__]
    if renamed:  # msgspec names a schema after its module too when two Structs share a name
        raise RuntimeError(f"two Structs of the API share a name: {renamed}; rename one")
    schemas.update(exact)
    _document_datetimes(schemas, structs)
    for struct, extra in extras.items():
        _merge(schemas[struct.__name__], extra)
        one_of: tuple[str, ...] = getattr(struct, "exactly_one_of", ())
        if one_of:
            _exactly_one_of(schemas[struct.__name__], struct, one_of)
    components["responses"] = {name: _error_response(status) for status, (name, _) in _ERRORS.items()}
    streams = _streams(app)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status in [s for s in responses if s.startswith(("4", "5"))]:
                del responses[status]  # Litestar's 400, with its own body
            if (method.upper(), path) in streams:
                _document_stream(responses, path)
            for status in _answers(method.upper(), path, operation, document):
                responses[str(status)] = {"$ref": _RESPONSES + _ERRORS[status][0]}
            operation["responses"] = dict(sorted(responses.items()))
    _plain_schemas(document)
    document["x-sse-events"] = {event: kind.__name__ for kind, event in EVENT_NAMES.items()}
    return document


def _plain_schemas(node: Any) -> None:
    """Two ways of saying "any" that readers take otherwise, said plainly:
    - Litestar writes `Any | None` as `oneOf: [{}, {"type": "null"}]`, which null matches twice (so it
      matches no value at all under `oneOf`): `{}`, any value;
    - msgspec writes `dict[str, Any]` as `{"type": "object"}`, which openapi-typescript reads as an object
      with no keys at all: `additionalProperties: {}` says any key with any value."""
    if isinstance(node, dict):
        one_of = node.get("oneOf")
        if isinstance(one_of, list) and {} in one_of:
            del node["oneOf"]
        if node.get("type") == "object" and not {"properties", "additionalProperties"} & set(node):
            node["additionalProperties"] = {}
        for value in node.values():
            _plain_schemas(value)
    elif isinstance(node, list):
        for value in node:
            _plain_schemas(value)


def _structs(app: Litestar) -> set[type[msgspec.Struct]]:
    """The Structs that operations take and answer (msgspec finds those inside them)."""
    found: set[type[msgspec.Struct]] = set()

    def visit(field: FieldDefinition) -> None:
        if field.is_subclass_of(msgspec.Struct):
            found.add(field.annotation)
        for inner in field.inner_types:
            visit(inner)

    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if handler.include_in_schema:
                    signature = handler.parsed_fn_signature
                    visit(signature.return_type)
                    if "data" in signature.parameters:
                        visit(signature.parameters["data"])
    return found


def _nested(structs: set[type[msgspec.Struct]]) -> set[type[msgspec.Struct]]:
    """`structs` and every Struct in their fields, at any depth."""
    found: set[type[msgspec.Struct]] = set()

    def visit(node: Any) -> None:
        if isinstance(node, msgspec.inspect.StructType):
            if node.cls in found:
                return
            found.add(node.cls)
        if isinstance(node, msgspec.Struct):
            for name in node.__struct_fields__:
                visit(getattr(node, name))
        elif isinstance(node, tuple):
            for item in node:
                visit(item)

    visit(tuple(msgspec.inspect.multi_type_info(list(structs))))
    return found


# What msgspec decodes as a datetime: RFC 3339, "T", "t" or a space between date and time, seconds required,
# any fraction, an optional offset (with or without its colon). Conservative about one date: February 29th,
# valid in leap years only, is left out.
_DATETIME = (
    "^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-"
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
    "[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?$"
)


def _document_datetimes(schemas: dict[str, Any], structs: set[type[msgspec.Struct]]) -> None:
    """Every datetime field (or datetime-or-null) of these structs gets the `_DATETIME` pattern."""
    for info in msgspec.inspect.multi_type_info(list(structs)):
        assert isinstance(info, msgspec.inspect.StructType)
        for field in info.fields:
            kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
            if any(isinstance(kind, msgspec.inspect.DateTimeType) for kind in kinds):
                for option in _options(schemas[info.cls.__name__]["properties"][field.encode_name]):
                    if option.get("type") == "string":
                        option["pattern"] = _DATETIME


def _options(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema.get("anyOf", [schema]))


def _merge(schema: dict[str, Any], extra: dict[str, Any]) -> None:
    """`extra` into `schema`: objects merged key by key, anything else replaced."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(schema.get(key), dict):
            _merge(schema[key], value)
        else:
            schema[key] = value


def _exactly_one_of(schema: dict[str, Any], struct: type[msgspec.Struct], names: tuple[str, ...]) -> None:
    """One `oneOf` branch per field: it is there and not null."""
    wire = {f.name: f.encode_name for f in msgspec.structs.fields(struct)}
    branches = []
    for name in names:
        field = schema["properties"][wire[name]]
        options = [o for o in field.get("anyOf", [field]) if o != {"type": "null"}]
        value = options[0] if len(options) == 1 else {"anyOf": options}
        branches.append({"required": [wire[name]], "properties": {wire[name]: value}})
    schema["oneOf"] = branches


def _with_refs(node: Any, structs: set[type[msgspec.Struct]]) -> Any:
    """`node` (JSON Schema) with each Struct type in it replaced by a reference to its schema, which
    `structs` gets so that the document has it."""
    if isinstance(node, type) and issubclass(node, msgspec.Struct):
        structs.add(node)
        return {"$ref": _SCHEMAS + node.__name__}
    if isinstance(node, dict):
        return {key: _with_refs(value, structs) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_with_refs(value, structs) for value in node]
    return node


def _answers(method: str, path: str, operation: dict[str, Any], document: dict[str, Any]) -> list[int]:
    """The error statuses of one operation."""
    statuses = {400, 403}  # the Host and Origin checks, on every request
    security = operation.get("security", document.get("security", []))
    if any(requirement for requirement in security):
        statuses.add(401)
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        statuses.add(404)
    if "requestBody" in operation:
        statuses.add(413)
    statuses.update(_FEATURE_ERRORS.get((method, path), ()))
    return sorted(statuses)


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERRORS[status][1],
        "content": {"application/json": {"schema": {"$ref": _SCHEMAS + "ErrorBody"}}},
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {
                "required": True,
                "schema": {"type": "string", "const": 'Bearer realm="deskpilot"'},
            }
        }
    elif status in _MODEL:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again (when the server can tell)",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    return response


def _streams(app: Litestar) -> set[tuple[str, str]]:
    """(method, path) of every operation that answers a `ServerSentEvent`."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            returns = handler.parsed_fn_signature.return_type
            if returns.is_subclass_of(ServerSentEvent):
                found.update((method, route.path_format) for method in handler.http_methods)
    return found


def _document_stream(responses: dict[str, Any], path: str) -> None:
    """A stream's success response: `text/event-stream`, its `schema` describing one event (as OpenAPI
    before 3.2 has it): which `event` names it sends and the JSON schema of each one's `data`."""
    events = _STREAM_EVENTS.get(path, _TEXT_EVENTS)
    names = {event: kind.__name__ for kind, event in EVENT_NAMES.items()}
    one_event = {
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": event},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": _SCHEMAS + names[event]},
                    },
                },
            }
            for event in events
        ]
    }
    for status, response in responses.items():
        if status.startswith("2"):
            response["description"] = (
                f"Server-sent events: {', '.join(events)}. Each has a JSON `data` line; comment lines "
                "keep the connection alive while the model works."
            )
            response["content"] = {"text/event-stream": {"schema": one_event}}

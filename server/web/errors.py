"""Every error the API answers, in one body (`ErrorBody`: code, message, and where it helps, the field or
Retry-After): validation, HTTP errors, a busy or failed model, and any other exception (a 500 that says
only that the server failed; what failed goes to the log, never to the client)."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from deskpilot.inference import BackendError, ModelBusy
from deskpilot.server.core.wire import ErrorBody
from deskpilot.server.models.registry import UnknownProfile
from deskpilot.server.models.router import NoRoute

__all__ = ["EXCEPTION_HANDLERS", "ApiError"]

log = logging.getLogger("deskpilot.server")


class ApiError(HTTPException):
    """An HTTP error with its own `code` in the error body (subclasses set both)."""

    code = "error"


def _error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    retry_after: int | None = None,
    field: str | None = None,
) -> Response[ErrorBody]:
    body = ErrorBody(code=code, message=message, retry_after=retry_after, field=field)
    return Response(body, status_code=status, headers=headers)


def _busy(_: Request[Any, Any, Any], exc: ModelBusy) -> Response[ErrorBody]:
    return _error(429, "busy", str(exc), {"Retry-After": str(exc.retry_after)}, exc.retry_after)


def _unavailable(_: Request[Any, Any, Any], exc: BackendError) -> Response[ErrorBody]:
    return _error(503, "model_unavailable", str(exc), {"Retry-After": "30"}, 30)


def _no_route(_: Request[Any, Any, Any], exc: NoRoute) -> Response[ErrorBody]:
    """Every profile the task may use is skipped: 429 when budgets are spent (until the day or month
    turns), else 503."""
    if exc.code == "budget_exhausted":
        return _error(429, exc.code, str(exc), {"Retry-After": "3600"}, 3600)
    return _error(503, exc.code, str(exc), {"Retry-After": "30"}, 30)


def _unknown_profile(_: Request[Any, Any, Any], exc: UnknownProfile) -> Response[ErrorBody]:
    return _error(400, "unknown_profile", str(exc), field="profile")


def _invalid(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    """400 with what was wrong and where, e.g. "Object missing required field `body` - at `$.email`"."""
    details = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict) and item.get("key") not in (None, "", "data"):
            details.append(f"{item['message']} at `{item['key']}`")
        elif isinstance(item, dict) and item.get("message") == "'data'":  # Litestar's word for no body
            details.append("a JSON body is required")
        elif isinstance(item, dict):
            details.append(str(item.get("message", item)))
    field = next(
        (i["key"] for i in exc.extra or [] if isinstance(i, dict) and i.get("key") not in (None, "", "data")),
        None,
    )
    return _error(400, "invalid_request", f"invalid request: {'; '.join(details) or exc.detail}", field=field)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    if exc.status_code >= 500:
        log.error("server error: %s", exc.detail)
    message = exc.detail
    if exc.status_code == 413:
        limit = request.app.request_max_body_size
        message = f"request body too large: the limit is {limit:,} bytes"
    code = exc.code if isinstance(exc, ApiError) else _CODES.get(exc.status_code, "error")
    return _error(exc.status_code, code, message, exc.headers)


def _unhandled(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal_error", "the server failed to answer this request; its log says why")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ModelBusy: _busy,
    NoRoute: _no_route,
    UnknownProfile: _unknown_profile,
    ValidationException: _invalid,
    BackendError: _unavailable,
    HTTPException: _http_error,
    Exception: _unhandled,
}

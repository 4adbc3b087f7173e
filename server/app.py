"""Assemble the Litestar app in one place (STYLE.md #3).

`create_app(settings, backend=..., lineage=...)` takes its collaborators as parameters: tests pass a
scripted backend or a store in a temporary folder instead of patching; production passes nothing and gets
the embedded model (loaded in the background) and the lineage store in the app data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from litestar import Litestar, Request, Response, get
from litestar.datastructures import CacheControlHeader, State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from deskpilot.addin_manifest import ASSETS_DIR
from deskpilot.indexes import DocumentIndex, index_folder
from deskpilot.inference import Backend, BackendError, ModelBusy

from . import __version__
from .actions.api import ActionsAPI, Automations, Workflows, WorkflowServices
from .api import AITasks, Status
from .ask import DocumentsAPI, Indexer
from .connectors.api import SyncAPI
from .connectors.service import GraphConnector
from .extraction import Extraction
from .lineage import LineageStore, ReviewQueue
from .model_host import ModelHost
from .reviews import Reviews
from .runs import RunExecutor
from .schemas import ErrorBody
from .security import local_only
from .settings import Settings
from .workflows.triggers import MailTrigger

__all__ = ["create_app"]

log = logging.getLogger("deskpilot.server")

# The built task pane (`npm run build` in taskpane/, run by `make setup`); shipped as package data.
TASKPANE_DIR = Path(__file__).with_name("static") / "taskpane"


def _default_backend(settings: Settings) -> Callable[[], Backend]:
    def load() -> Backend:
        from deskpilot.inference.llama import LlamaCppBackend  # imports llama.cpp: off the start-up path

        model_path = Path(settings.model_path) if settings.model_path else None
        return LlamaCppBackend(model_path, context_length=settings.context_length, threads=settings.threads,
                               cache_dir=settings.cache_dir)

    return load


def create_app(
    settings: Settings,
    *,
    backend: Backend | Callable[[], Backend] | None = None,
    lineage: LineageStore | None = None,
    index: DocumentIndex | None = None,
    graph: GraphConnector | None = None,
) -> Litestar:
    settings.home.mkdir(parents=True, exist_ok=True)
    owns_lineage = lineage is None
    lineage = lineage or LineageStore(settings.db_path)
    indexer = Indexer(index or DocumentIndex(index_folder(settings.home)))
    workflows = WorkflowServices.create(settings, lineage)
    graph = graph or GraphConnector(settings, indexer.index, on_new_mail=MailTrigger(workflows.events))
    host = ModelHost(backend or _default_backend(settings), max_waiting=settings.max_queue)
    executor = RunExecutor(host, lineage, retain_inputs=settings.retain_inputs)
    stopping = asyncio.Event()
    background: set[asyncio.Task[None]] = set()

    async def on_startup() -> None:
        recovered = lineage.recover_interrupted()
        if recovered:
            log.warning("closed %d run(s) left open by a previous crash as 'interrupted'", recovered)
        host.start_loading()
        # What a crash left between the outbox and the queue goes back in line (the worker does the same).
        background.add(asyncio.create_task(asyncio.to_thread(workflows.requeue)))
        if not (TASKPANE_DIR / "index.html").is_file():
            log.warning("the task pane is not built (no %s): run `make setup`", TASKPANE_DIR / "index.html")
        # torch and the embedding model take ~10 s to load and hold the GIL while importing: start once
        # the model has loaded, so that neither readiness nor the first summary waits for them.
        background.add(asyncio.create_task(_warm_index_after(host, indexer)))

    async def on_shutdown() -> None:
        stopping.set()
        for task in background:
            task.cancel()
        await asyncio.to_thread(graph.close)  # a running sync stops after its current request
        await indexer.close()
        await host.close()
        workflows.queue.close()
        if owns_lineage:
            lineage.close()

    def provide(value: object) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    return Litestar(
        route_handlers=[
            AITasks, Extraction, Reviews, DocumentsAPI, SyncAPI, Status, ActionsAPI, Workflows, Automations,
            *_taskpane_routes(),
        ],
        dependencies={
            "settings": provide(settings),
            "executor": provide(executor),
            "lineage": provide(lineage),
            "reviews": provide(ReviewQueue(lineage)),
            "stopping": provide(stopping),
            "indexer": provide(indexer),
            "graph": provide(graph),
            "workflow_services": provide(workflows),
            "review_decided": provide(workflows.review_decided),
        },
        state=State({"stopping": stopping, "host": host}),
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        middleware=[local_only("https" if settings.https else "http", settings.port)],
        exception_handlers={
            ModelBusy: _busy,
            ValidationException: _invalid,
            BackendError: _unavailable,
            HTTPException: _http_error,
        },
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Deskpilot", version=__version__, path="/openapi",
                                     render_plugins=[JsonRenderPlugin()]),
        debug=False,
    )


async def _warm_index_after(host: ModelHost, indexer: Indexer) -> None:
    with contextlib.suppress(Exception):  # a failed load shows up again, with its reason, on real use
        await host.ready()
    indexer.index.warm_up(background=True)


@get("/", include_in_schema=False)
async def _home() -> Redirect:
    """The add-in's support URL: the pane itself, which outside Office shows status and a text box."""
    return Redirect("/taskpane/index.html")


def _taskpane_routes() -> list[ControllerRouterHandler]:
    """The task pane and the add-in icons, served from the API's own origin (so the pane is never a public
    page calling localhost, and Office.js comes from here, not a CDN). `no-cache` makes Office's web view
    revalidate (cheap, ETag) so an upgraded pane is picked up at once."""
    revalidate = CacheControlHeader(no_cache=True)
    return [
        # More specific prefix first: the icons the manifests point at, from addin_manifest/assets.
        create_static_files_router("/taskpane/assets", directories=[ASSETS_DIR], name="addin-icons",
                                   cache_control=revalidate),
        create_static_files_router("/taskpane", directories=[TASKPANE_DIR], html_mode=True, name="taskpane",
                                   cache_control=revalidate),
        _home,
    ]


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
           retry_after: int | None = None, field: str | None = None) -> Response[ErrorBody]:
    body = ErrorBody(code=code, message=message, retry_after=retry_after, field=field)
    return Response(body, status_code=status, headers=headers)


def _busy(_: Request, exc: ModelBusy) -> Response[ErrorBody]:
    return _error(429, "busy", str(exc), {"Retry-After": str(exc.retry_after)}, exc.retry_after)


def _unavailable(_: Request, exc: BackendError) -> Response[ErrorBody]:
    return _error(503, "model_unavailable", str(exc), {"Retry-After": "30"}, 30)


def _invalid(_: Request, exc: ValidationException) -> Response[ErrorBody]:
    """400 with what was wrong and where, e.g. "Object missing required field `body` - at `$.email`"."""
    details = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict) and item.get("key") not in (None, "", "data"):
            details.append(f"{item['message']} at `{item['key']}`")
        elif isinstance(item, dict):
            details.append(str(item.get("message", item)))
    field = next((i["key"] for i in exc.extra or []
                  if isinstance(i, dict) and i.get("key") not in (None, "", "data")), None)
    return _error(400, "invalid_request", f"invalid request: {'; '.join(details) or exc.detail}", field=field)


_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 409: "conflict",
          413: "body_too_large", 415: "unsupported_media_type"}


def _http_error(request: Request, exc: HTTPException) -> Response[ErrorBody]:
    if exc.status_code >= 500:
        log.error("server error: %s", exc.detail)
    message = exc.detail
    if exc.status_code == 413:
        limit = request.app.request_max_body_size
        message = f"request body too large: the limit is {limit:,} bytes"
    return _error(exc.status_code, _CODES.get(exc.status_code, "error"), message, exc.headers)

"""Assemble the Litestar app in one place: routes, dependencies, middleware and error handlers.

`create_app(services)` takes the composition root (`services.py`): tests build `Services` with a scripted
backend, a temporary lineage store or a stand-in Graph connector instead of patching; production builds
it from settings and gets the embedded model (loaded in the background) and the stores in the app data
folder. `create_app(settings, backend=...)` is shorthand for `create_app(Services(settings, backend=...))`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from litestar import Litestar, get
from litestar.datastructures import CacheControlHeader, State
from litestar.di import Provide
from litestar.openapi.spec import Components
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from deskpilot.addin_manifest import ASSETS_DIR
from deskpilot.indexes import HashEmbedder
from deskpilot.inference.faithful import FaithfulChecker, RecentEmbeddings
from deskpilot.server import __version__
from deskpilot.server.actions.api import ActionsAPI
from deskpilot.server.connectors.api import SyncAPI
from deskpilot.server.core.model_host import ModelHost
from deskpilot.server.core.private import make_private
from deskpilot.server.core.token import TokenFile, ensure_token
from deskpilot.server.documents.api import DocumentsAPI
from deskpilot.server.documents.service import Indexer
from deskpilot.server.extraction.api import Extraction
from deskpilot.server.extraction.reviews_api import Reviews
from deskpilot.server.extraction.triage_api import TriageExamples
from deskpilot.server.lineage.api import Runs
from deskpilot.server.ops import DashboardAPI, Operations, register_collectors
from deskpilot.server.ops.report import DASHBOARD_DIR
from deskpilot.server.services import Services
from deskpilot.server.settings import Settings
from deskpilot.server.tasks.api import AITasks
from deskpilot.server.web.errors import EXCEPTION_HANDLERS
from deskpilot.server.web.hygiene import complete_allow, limited_request, refuse_nul_paths
from deskpilot.server.web.openapi import openapi_config
from deskpilot.server.web.security import TOKEN_SCHEME, local_only
from deskpilot.server.web.status import Status
from deskpilot.server.workflows.api import Automations, Workflows

__all__ = ["create_app"]

log = logging.getLogger("deskpilot.server")

# The built task pane (`npm run build` in taskpane/, run by `make setup`); shipped as package data.
TASKPANE_DIR = Path(__file__).with_name("static") / "taskpane"


def create_app(services: Services | Settings, **parts: Any) -> Litestar:
    if isinstance(services, Settings):
        services = Services(services, **parts)
    settings = services.settings
    indexer = Indexer(services.index, services.index_roots)
    workflows = services.workflows
    host = services.host
    # The per-user secret every client but /healthz and the pane's files presents (web/security.py);
    # created on first start, re-read by the middleware whenever `deskpilot token rotate` replaces it.
    ensure_token(settings.token_path)
    token = TokenFile(settings.token_path)
    stopping = asyncio.Event()
    background: set[asyncio.Task[object]] = set()
    metrics_registry = register_collectors(
        services.telemetry,
        models=services.models,
        lineage=services.lineage,
        settings=settings,
        drift=services.drift,
    )

    async def on_startup() -> None:
        # The app data folder and all in it owner-only, fixing an install made before (core/private.py).
        make_private(settings.home)
        recovered = services.lineage.recover_interrupted()
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
        if settings.drift_enabled:  # embeds once the index has loaded its model (server/ops/drift.py)
            services.drift.start(services.index.embedder)
        models = services.models
        if any(not models.is_local(n) and p.pii != "allow" for n, p in models.profiles.items()):
            background.add(asyncio.create_task(asyncio.to_thread(services.executor.privacy.warm)))

    async def on_shutdown() -> None:
        stopping.set()
        for task in background:
            task.cancel()
        await indexer.finish()
        await services.aclose()

    def provide(value: object) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    app = Litestar(
        route_handlers=[
            AITasks,
            Runs,
            Extraction,
            Reviews,
            TriageExamples,
            DocumentsAPI,
            SyncAPI,
            Status,
            ActionsAPI,
            Workflows,
            Automations,
            Operations,
            DashboardAPI,
            *_taskpane_routes(),
        ],
        dependencies={
            # Not "settings": Litestar takes a body field named like a dependency for a failed dependency,
            # so a body `{"settings": 5}` was a 500. No dependency is named like a body field.
            "app_settings": provide(settings),
            "executor": provide(services.executor),
            "lineage": provide(services.lineage),
            "reviews": provide(services.reviews),
            "triage": provide(services.triage),
            "stopping": provide(stopping),
            "indexer": provide(indexer),
            # Summaries and answers are checked against their sources with the index's embedder.
            # Until MiniLM has loaded (~10 s after a start) the hash embedder stands in: no check waits.
            "checker": provide(
                FaithfulChecker(RecentEmbeddings(services.index.embedder), until_ready=HashEmbedder())
            ),
            "graph": provide(services.graph),
            "outbox": provide(workflows.outbox),
            "queue": provide(workflows.queue),
            "workflow_services": provide(workflows),
            "review_decided": provide(workflows.review_decided),
            "metrics_registry": provide(metrics_registry),
            "drift_monitor": provide(services.drift),
        },
        state=State({"stopping": stopping, "host": host, "services": services}),
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        middleware=[refuse_nul_paths, complete_allow],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        request_class=limited_request(settings.max_json_depth),
        openapi_config=openapi_config(
            title="Deskpilot",
            version=__version__,
            # Every operation but /healthz (whose requirement is empty, `[{}]`) needs the per-user token.
            security=[{"token": []}],
            components=Components(security_schemes={"token": TOKEN_SCHEME}),
        ),
        debug=False,
    )
    # The guard wraps the whole app, in front of routing: Litestar's own middleware runs only once a
    # route matched, which would let unknown paths and Litestar's own Host check answer first.
    app.asgi_handler = local_only("https" if settings.https else "http", settings.port, settings.host, token)(
        app.asgi_handler
    )
    # Outside the guard, so refusals (401, 403) are counted and a request's trace starts before any check.
    app.asgi_handler = services.telemetry.asgi(app.asgi_handler)
    return app


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
        create_static_files_router(
            "/taskpane/assets", directories=[ASSETS_DIR], name="addin-icons", cache_control=revalidate
        ),
        create_static_files_router(
            "/taskpane", directories=[TASKPANE_DIR], html_mode=True, name="taskpane", cache_control=revalidate
        ),
        create_static_files_router(
            "/dashboard",
            directories=[DASHBOARD_DIR],
            html_mode=True,
            name="dashboard",
            cache_control=revalidate,
        ),
        _home,
    ]

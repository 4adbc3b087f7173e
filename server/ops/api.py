"""`GET /metrics` (Prometheus text format), `GET /v1/slo`, `GET /v1/drift` and `POST /v1/drift/rebaseline`,
behind the per-user token like every route.

A scraper presents the token as a bearer token (Prometheus' `authorization: {credentials_file: ...}`
pointing at the token file; installer/README.md has the scrape config). The scrape runs on a worker thread:
the collectors read the database.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import anyio
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, QueryParameter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from deskpilot.server.core.telemetry import Telemetry
from deskpilot.server.lineage import LineageStore
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.ops.collectors import DriftCollector, GpuCollector, ModelQueueCollector, StoredCollector
from deskpilot.server.ops.drift import DriftMonitor, DriftReport, Rebaselined, RebaselineIn, UnknownDriftTask
from deskpilot.server.ops.slo import SloReport, slo_report
from deskpilot.server.settings import Settings

__all__ = ["Operations", "register_collectors"]


def register_collectors(
    telemetry: Telemetry,
    *,
    models: ModelRegistry,
    lineage: LineageStore,
    settings: Settings,
    drift: DriftMonitor | None = None,
) -> CollectorRegistry:
    """Add the scrape-time collectors to the app's registry (once per app) and return it."""
    registry = telemetry.registry
    registry.register(ModelQueueCollector(models))
    registry.register(GpuCollector())
    registry.register(StoredCollector(lineage, settings.sync_db_path))
    if drift is not None:
        registry.register(DriftCollector(lineage, drift))
    return registry


class Operations(Controller):
    tags = ("Operations",)

    @get("/metrics", summary="Metrics in the Prometheus text format", media_type=CONTENT_TYPE_LATEST)
    async def metrics(self, metrics_registry: NamedDependency[CollectorRegistry]) -> Response[bytes]:
        body = await anyio.to_thread.run_sync(generate_latest, metrics_registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @get("/v1/slo", summary="Workflow availability and synchronous latency against their objectives")
    async def slo(
        self,
        lineage: NamedDependency[LineageStore],
        window_days: Annotated[float, QueryParameter(name="windowDays", gt=0, le=3650)] = 28.0,
    ) -> SloReport:
        return await anyio.to_thread.run_sync(slo_report, lineage, timedelta(days=window_days))

    @get("/v1/drift", summary="Drift of each task's inputs and outputs against its reference window")
    async def drift(self, drift_monitor: NamedDependency[DriftMonitor]) -> DriftReport:
        """Checks first (the tasks whose windows moved since their last check), then the latest signals."""
        return await anyio.to_thread.run_sync(drift_monitor.report)

    @post(
        "/v1/drift/rebaseline",
        status_code=200,
        summary="Accept a task's current state as its new normal: its drift reference restarts now",
    )
    async def rebaseline(
        self, data: JSONBody[RebaselineIn], drift_monitor: NamedDependency[DriftMonitor]
    ) -> Rebaselined:
        """Clears the task's alarms with one chained drift.rebaselined event; 404 for a task drift does not
        know."""
        try:
            return await anyio.to_thread.run_sync(
                lambda: drift_monitor.rebaseline(data.task, actor=data.actor or "api")
            )
        except UnknownDriftTask as exc:
            raise NotFoundException(str(exc)) from exc

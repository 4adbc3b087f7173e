"""`GET /v1/dashboard` (every view of the compliance and IT dashboard, `dashboard.py`) and `POST
/v1/audit/verify` (its "Verify now"), behind the per-user token like every /v1 route. Both read or write
lineage on a worker thread: the store blocks on disk.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import QueryParameter

from deskpilot.server.lineage import LineageStore
from deskpilot.server.ops.dashboard import (
    DEFAULT_SPAN,
    Bucket,
    Dashboard,
    Verification,
    dashboard_data,
    parse_rfc3339,
    verify_and_record,
)
from deskpilot.server.ops.retention import Retention
from deskpilot.server.settings import Settings

__all__ = ["DashboardAPI"]


class DashboardAPI(Controller):
    tags = ("Operations",)

    @get("/v1/dashboard", summary="Latency, cost, review and override rates, SLOs, drift and chain status")
    async def dashboard(
        self,
        lineage: NamedDependency[LineageStore],
        app_settings: NamedDependency[Settings],
        since: Annotated[
            str | None,
            QueryParameter(
                description="RFC 3339 date-time (2026-11-01T00:00:00Z); default 30 days ago",
                max_length=64,
                schema_extra={"format": "date-time"},
            ),
        ] = None,
        bucket: Annotated[Bucket, QueryParameter(description="Group the charts by hour or by day")] = "day",
    ) -> Dashboard:
        try:
            start = lineage.now() - DEFAULT_SPAN if since is None else parse_rfc3339(since)
        except ValueError as exc:
            raise ClientException(str(exc)) from exc
        retention = Retention(lineage, app_settings)
        return await anyio.to_thread.run_sync(dashboard_data, lineage, start, bucket, retention)

    @post(
        "/v1/audit/verify",
        summary="Re-derive every hash chain and record the outcome as an audit.verify event",
        status_code=200,
    )
    async def verify(self, lineage: NamedDependency[LineageStore]) -> Verification:
        return await anyio.to_thread.run_sync(lambda: verify_and_record(lineage, actor="dashboard"))

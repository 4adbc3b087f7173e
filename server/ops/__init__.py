"""Operations: what an IT admin scrapes (`/metrics`), the service level objectives (`/v1/slo`) and the
compliance and IT dashboard's data (`/v1/dashboard`, dashboard.py and dashboard_api.py).

Live measurements (latency, queue waits, errors, traces) are taken where the work happens
(server/core/telemetry.py); what the worker did and what must survive restarts is read from the database at
scrape time (`collectors.py`).
"""

from deskpilot.server.ops.api import Operations, register_collectors
from deskpilot.server.ops.dashboard_api import DashboardAPI
from deskpilot.server.ops.slo import Slo, SloReport, slo_report

__all__ = ["DashboardAPI", "Operations", "Slo", "SloReport", "register_collectors", "slo_report"]

"""`GET /v1/runs/{id}`: one run's lineage record, for the task pane's "how was this made"."""

from __future__ import annotations

import anyio
import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from deskpilot.server.core.wire import camel_view
from deskpilot.server.lineage._types import Run
from deskpilot.server.lineage.store import LineageStore

__all__ = ["RunOut", "Runs"]


# A class built at import time cannot be a static base for mypy; the fields are Run's (one list, not two).
class RunOut(camel_view(Run, "_RunWire")):  # type: ignore[misc]
    """A run's lineage record as the API shows it."""

    @classmethod
    def from_run(cls, run: Run) -> RunOut:
        return cls(**msgspec.structs.asdict(run))


class Runs(Controller):
    path = "/v1/runs"
    tags = ("AI tasks",)

    @get("/{run_id:str}", summary="One run's lineage record")
    async def run(self, run_id: FromPath[str], lineage: NamedDependency[LineageStore]) -> RunOut:
        run = await anyio.to_thread.run_sync(lineage.get_run, run_id)
        if run is None:
            raise NotFoundException(f"no run {run_id!r}")
        return RunOut.from_run(run)

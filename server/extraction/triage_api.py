"""What triage learnt, over HTTP: list the labelled examples and forget one.

Every accepted or edited classification review becomes an example (`TriageMemory`); a person can see them
(`GET /v1/triage/examples`) and delete one (`DELETE /v1/triage/examples/{id}`), after which it no longer
steers any answer. The review decision itself stays in the audit chain.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from litestar import Controller, delete, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter

from deskpilot.server.extraction.triage_memory import TriageMemory
from deskpilot.server.extraction.wire import TriageExampleOut, TriageExamplesOut, convert_out

__all__ = ["TriageExamples"]


class TriageExamples(Controller):
    path = "/v1/triage"
    tags = ("Extraction",)

    @get("/examples", summary="Labelled examples triage learnt from review decisions, newest first")
    async def examples(
        self,
        triage: NamedDependency[TriageMemory],
        label: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> TriageExamplesOut:
        found = await anyio.to_thread.run_sync(lambda: triage.examples(label=label, limit=limit))
        return TriageExamplesOut(examples=[convert_out(e, TriageExampleOut) for e in found])

    @delete("/examples/{example_id:str}", status_code=204, summary="Forget an example")
    async def forget(self, example_id: FromPath[str], triage: NamedDependency[TriageMemory]) -> None:
        if not await anyio.to_thread.run_sync(triage.delete, example_id):
            raise NotFoundException(f"no triage example {example_id!r}")

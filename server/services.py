"""The composition root: every long-lived service, built once from settings, in one place.

The HTTP app (`app.py`), the queue's consumer (`worker.py`), every CLI command and the mail trigger all
start from `Services.build(settings)`; tests pass the collaborators they want instead (a scripted backend,
a `MemoryHuey` queue, a stand-in Graph connector, an index with a hash embedder), so nothing is patched.
What is expensive or not always needed (the model, the index, the Graph connector, the queue) is built
on first use, so `deskpilot audit verify` never loads torch and a worker that only sends webhooks never
loads the model. `close()` closes what was built, in reverse order.

Nothing here knows HTTP: the worker imports this module, never `app.py` (an import-linter contract).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING

import anyio

from deskpilot.server.core.model_host import ModelHost
from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.core.telemetry import Telemetry
from deskpilot.server.documents.roots import IndexRoots
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.extraction.triage_memory import TriageMemory
from deskpilot.server.lineage import LineageStore
from deskpilot.server.models.registry import BackendSource, ModelRegistry
from deskpilot.server.ops.drift import DriftMonitor
from deskpilot.server.ops.retention import Retention
from deskpilot.server.runs import RunExecutor
from deskpilot.server.settings import EMBEDDED_PROFILE, Settings
from deskpilot.server.workflows.services import WorkflowServices
from deskpilot.server.workflows.triggers import MailTrigger

if TYPE_CHECKING:
    from deskpilot.indexes import DocumentIndex, Embedder
    from deskpilot.server.connectors.service import GraphConnector

__all__ = ["Services"]


class Services:
    def __init__(
        self,
        settings: Settings,
        *,
        backend: BackendSource | None = None,
        backends: Mapping[str, BackendSource] | None = None,
        lineage: LineageStore | None = None,
        queue: TaskQueue | None = None,
        index: DocumentIndex | None = None,
        embedder: Embedder | None = None,
        graph: GraphConnector | None = None,
        max_waiting: int | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        settings.home.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        # `backend`: the embedded profile's backend; `backends`: any profile's (tests pass scripted ones).
        self._backends = dict(backends or {})
        if backend is not None:
            self._backends[EMBEDDED_PROFILE] = backend
        self._owns_lineage = lineage is None
        self.lineage = lineage or LineageStore(settings.db_path)
        self._queue, self._index, self._embedder, self._graph = queue, index, embedder, graph
        self._telemetry = telemetry
        # CLI commands run one request and never wait in line; the server queues up to `max_queue`.
        self.max_waiting = settings.max_queue if max_waiting is None else max_waiting

    @cached_property
    def models(self) -> ModelRegistry:
        """Every model profile; the one place backends are built from settings."""
        return ModelRegistry(self.settings, backends=self._backends, max_waiting=self.max_waiting)

    @cached_property
    def telemetry(self) -> Telemetry:
        """Live metrics and traces of this process (server/core/telemetry.py); tests pass their own."""
        if self._telemetry is None:
            self._telemetry = Telemetry(
                otel_endpoint=self.settings.otel_endpoint, sample_ratio=self.settings.otel_sample_ratio
            )
        return self._telemetry

    @cached_property
    def executor(self) -> RunExecutor:
        return RunExecutor(
            self.models,
            self.lineage,
            retain_inputs=self.settings.retain_inputs,
            result_cache=self.settings.result_cache,
            telemetry=self.telemetry,
            on_input=self.drift.observe if self.settings.drift_enabled else None,
        )

    @cached_property
    def drift(self) -> DriftMonitor:
        """Drift of each task's inputs and outputs (server/ops/drift.py). The executor hands it every input;
        it embeds them only once `start`ed (the app does, with the index's embedder)."""
        return DriftMonitor(self.lineage, self.settings)

    @property
    def host(self) -> ModelHost:
        """The default route's first model (what `/healthz` reports)."""
        return self.executor.host

    @cached_property
    def retention(self) -> Retention:
        """Retention, erasure and legal hold (server/ops/retention.py); the index opens only if needed."""
        return Retention(self.lineage, self.settings, index=lambda: self.index)

    @cached_property
    def reviews(self) -> ReviewQueue:
        return ReviewQueue(self.lineage)

    @cached_property
    def triage(self) -> TriageMemory:
        """Triage's zero-shot scores and the examples it learnt from review, on the index's embedder (one
        copy of MiniLM for both)."""
        return TriageMemory(self.lineage, self.index.embedder, retain_text=self.settings.retain_inputs)

    @cached_property
    def queue(self) -> TaskQueue:
        if self._queue is None:
            self._queue = TaskQueue.sqlite(self.settings)
        return self._queue

    @cached_property
    def workflows(self) -> WorkflowServices:
        return WorkflowServices.create(self.settings, self.lineage, self.queue)

    @cached_property
    def index(self) -> DocumentIndex:
        if self._index is None:
            from deskpilot.indexes import DocumentIndex, index_folder

            self._index = DocumentIndex(index_folder(self.settings.home), embedder=self._embedder)
        return self._index

    @cached_property
    def index_roots(self) -> IndexRoots:
        """The folders documents may be indexed from (the settings' and those the user added)."""
        return IndexRoots(self.settings)

    @cached_property
    def mail_trigger(self) -> MailTrigger:
        """What a Graph sync calls with new mail (the server's and `deskpilot sync`): it starts the workflows
        that mail rules ask for."""
        return MailTrigger(self.workflows.events)

    @cached_property
    def graph(self) -> GraphConnector:
        if self._graph is None:
            from deskpilot.server.connectors.service import GraphConnector

            self._graph = GraphConnector(self.settings, self.index, on_new_mail=self.mail_trigger)
        return self._graph

    async def aclose(self) -> None:
        """Close what was built, the model included (it closes on the event loop that used it)."""
        if "models" in vars(self):
            await self.models.aclose()
        await anyio.to_thread.run_sync(self.close)  # a running sync stops after its current request

    def close(self) -> None:
        """Close what was built but the model host (see `aclose`), newest first."""
        built = vars(self)
        if "drift" in built:
            self.drift.close()
        if "graph" in built:
            self.graph.close()
        if "index" in built:
            self.index.close()
        if "queue" in built:
            self.queue.close()
        if self._owns_lineage:
            self.lineage.close()
        if "telemetry" in built:
            self.telemetry.shutdown()  # sends the spans still buffered

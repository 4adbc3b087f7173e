"""What a process that proposes and starts work, but never runs a step, holds: the outbox, the queue, the
workflow engine and the event log (the server, `deskpilot sync`, `deskpilot events replay`). The consumer
(`server/worker.py`) builds the same with a model and adapters."""

from __future__ import annotations

from dataclasses import dataclass

from deskpilot.server.actions.outbox import Outbox
from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.lineage import LineageStore
from deskpilot.server.settings import Settings
from deskpilot.server.workflows.ai import WorkflowAI
from deskpilot.server.workflows.definitions import DEFINITIONS
from deskpilot.server.workflows.engine import WorkflowEngine
from deskpilot.server.workflows.events import EventLog

__all__ = ["WorkflowServices"]


@dataclass
class WorkflowServices:
    """The outbox, queue, engine and event log of one process that proposes and starts, but never runs
    a step (the server, `deskpilot sync`, `deskpilot events replay`): no model, no adapters."""

    outbox: Outbox
    queue: TaskQueue
    engine: WorkflowEngine
    events: EventLog

    @classmethod
    def create(
        cls,
        settings: Settings,
        lineage: LineageStore,
        queue: TaskQueue,
        *,
        ai: WorkflowAI | None = None,
        reviews: ReviewQueue | None = None,
    ) -> WorkflowServices:
        """Without `ai` the engine can start and wait, not run a model step (only the consumer does)."""
        outbox = Outbox(lineage)
        engine = WorkflowEngine(
            outbox,
            queue,
            DEFINITIONS,
            ai=ai,
            reviews=reviews,
            step_retries=settings.workflow_step_retries,
            backoff_seconds=settings.action_backoff_seconds,
            triage_labels=settings.triage_labels,
        )
        return cls(outbox=outbox, queue=queue, engine=engine, events=EventLog(outbox, engine))

    def requeue(self, *, sweep: bool = False) -> dict[str, int]:
        """Put back in line what a crash left between the outbox and the queue (`recover`s of the outbox
        and the engine). Duplicates are harmless: claims decide. A `sweep` leaves alone what was queued
        in the last 30 s, which the queue is about to deliver."""
        found = self.outbox.recover(stale_seconds=30.0 if sweep else 0.0)
        released = self.outbox.release_budget_holds()
        for action_id in [*found["execute"], *released]:
            self.queue.execute(action_id)
        for action_id in found["compensate"]:
            self.queue.compensate(action_id)
        workflows = self.engine.recover(sweep=sweep)
        for workflow_id in workflows:
            self.queue.advance(workflow_id)
        return {
            "execute": len(found["execute"]) + len(released),
            "compensate": len(found["compensate"]),
            "workflows": len(workflows),
        }

    def review_decided(self, review_id: str) -> None:
        for workflow_id in self.engine.waiting_for_review(review_id):
            self.queue.advance(workflow_id)

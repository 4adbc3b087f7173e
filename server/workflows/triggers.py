"""New mail from the Graph sync as workflow triggers: append to the event log, then dispatch by rule."""

from __future__ import annotations

from typing import Any

from ..actions.outbox import Outbox
from ..actions.queue import TaskQueue
from ..lineage import LineageStore
from ..settings import Settings
from .definitions import DEFINITIONS
from .engine import WorkflowEngine
from .events import EventLog

__all__ = ["MailTrigger"]


class MailTrigger:
    """`trigger(mails)` for `GraphSync(on_new_mail=...)`; one per sync run (or one for the server)."""

    def __init__(self, settings: Settings, lineage: LineageStore | None = None,
                 queue: TaskQueue | None = None) -> None:
        self._own_lineage, self._own_queue = lineage is None, queue is None
        self.lineage = lineage or LineageStore(settings.db_path)
        self.queue = queue or TaskQueue(settings)
        outbox = Outbox(self.lineage)
        engine = WorkflowEngine(outbox, self.queue, DEFINITIONS, triage_labels=settings.triage_labels)
        self.events = EventLog(outbox, engine)

    def __call__(self, mails: list[dict[str, Any]]) -> None:
        for mail in mails:
            seq, created = self.events.append("graph", "mail.received", mail["sourceRef"], mail)
            if created:
                self.events.dispatch(seq)

    def close(self) -> None:
        if self._own_queue:
            self.queue.close()
        if self._own_lineage:
            self.lineage.close()

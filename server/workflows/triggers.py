"""New mail from the Graph sync as workflow triggers: append to the event log, then dispatch by rule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..settings import Settings
from .events import EventLog

__all__ = ["MailTrigger"]


class MailTrigger:
    """`trigger(mails)` for `GraphSync(on_new_mail=...)`."""

    def __init__(self, events: EventLog) -> None:
        self.events = events

    def __call__(self, mails: list[dict[str, Any]]) -> None:
        for mail in mails:
            seq, created = self.events.append("graph", "mail.received", mail["sourceRef"], mail)
            if created:
                self.events.dispatch(seq)

    @classmethod
    @contextmanager
    def opened(cls, settings: Settings) -> Iterator[MailTrigger]:
        """One with its own lineage store and queue, for a process that has neither (`deskpilot sync`)."""
        from ..actions.api import WorkflowServices
        from ..lineage import LineageStore

        with LineageStore(settings.db_path) as lineage:
            services = WorkflowServices.create(settings, lineage)
            try:
                yield cls(services.events)
            finally:
                services.queue.close()

"""New mail from the Graph sync as workflow triggers: append to the event log, then dispatch by rule."""

from __future__ import annotations

from typing import Any

from deskpilot.server.workflows.events import EventLog

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

"""Automations and their runtime policies: kill switch, approval mode per action kind, daily budget.

An automation is a named source of actions: a workflow started by a rule or by the task pane
("invoice_intake", "meeting_followup"), or "taskpane" for actions a person proposes directly. Its row
in `automations` is read at every decision point, never cached, so a change through `PUT
/v1/automations/{name}` applies to the next proposal, claim or trigger without a restart:

- `enabled` false is the kill switch: triggers start nothing, and queued actions stop before their
  effect (the executor checks at claim time and holds them; re-enabling releases them).
- `approval[kind]`: "always" (a person approves), "below_threshold" (a person approves when the
  proposal's confidence is below `threshold`), "never" (approved by policy).
- `daily_budget`: at most this many effects per UTC day; more are held until the next day or until
  the budget is raised.

A proposal's confidence is the server's, never the client's: that of the lineage run it cites (1.0 once a
person accepted or edited that run's result in review, 0 for a run with none, or no run at all).

Loosening a policy (`loosenings`: a kind's mode to a less strict one, a lower threshold, the meeting
follow-up's review turned off) is a person's explicit, confirmed choice, and IT may forbid it
(`Settings.allow_loosening_approval`); tightening never needs confirming.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from deskpilot.server.actions._types import ACTION_KINDS
from deskpilot.server.core.db import MAX_SAFE_INT

__all__ = [
    "APPROVAL_MODES",
    "DEFAULT_AUTOMATIONS",
    "Automation",
    "AutomationUpdate",
    "LooseningForbidden",
    "LooseningNotConfirmed",
    "LooseningRefused",
    "MailRule",
    "loosenings",
    "needs_person",
]

ApprovalMode = Literal["always", "below_threshold", "never"]
APPROVAL_MODES = ("always", "below_threshold", "never")


class MailRule(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """New mail from the Graph sync starts the automation's workflow when every set condition holds.

    `folder` matches the folder's display name (case-insensitive); `sender` an address, or a domain
    written "@contoso.com"; `label` the triage label the workflow's first step must find (checked by
    the workflow, since it needs the model)."""

    folder: str | None = None
    sender: str | None = None
    label: str | None = None

    @property
    def empty(self) -> bool:
        return self.folder is None and self.sender is None and self.label is None

    def matches(self, folder: str, sender: str) -> bool:
        if self.empty:
            return False
        if self.folder is not None and self.folder.casefold() != folder.casefold():
            return False
        if self.sender is not None:
            want, got = self.sender.casefold(), sender.casefold()
            if want.startswith("@") and not got.endswith(want):
                return False
            if not want.startswith("@") and want != got:
                return False
        return True


def _default_approval() -> dict[str, ApprovalMode]:
    # A draft waits in Drafts for the user anyway; anything others see needs a person by default.
    return {
        "draft_reply": "never",
        "todo_task": "below_threshold",
        "file_document": "below_threshold",
        "calendar_event": "always",
        "webhook": "always",
    }


class Automation(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    workflow: str | None = None
    enabled: bool = True
    rule: MailRule = msgspec.field(default_factory=MailRule)
    approval: dict[str, ApprovalMode] = msgspec.field(default_factory=_default_approval)
    threshold: float = 0.8
    daily_budget: int | None = None
    # Workflow parameters, e.g. the finance webhook URL and the keyring name of its secret, the
    # approver's To Do list, how long a review may wait before it escalates.
    settings: dict[str, Any] = {}
    enabled_at: str = ""
    updated_at: str = ""
    updated_by: str = ""  # a person's name, or the process that changed it ("deskpilot")
    updated_by_address: str | None = None  # the person's email address (None before 0.3, or a process)


# A daily budget: at most what SQLite stores and JSON clients hold exactly (a larger one was a 500).
_Budget = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]


class AutomationUpdate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A partial update: fields left out keep their value."""

    # In the OpenAPI document: what `check` refuses.
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "properties": {
            "approval": {"propertyNames": {"enum": list(ACTION_KINDS)}},
            "threshold": {"minimum": 0, "maximum": 1},
        }
    }

    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    rule: MailRule | msgspec.UnsetType = msgspec.UNSET
    approval: dict[str, ApprovalMode] | msgspec.UnsetType = msgspec.UNSET
    threshold: float | msgspec.UnsetType = msgspec.UNSET
    daily_budget: _Budget | msgspec.UnsetType | None = msgspec.UNSET
    settings: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET

    def check(self) -> None:
        if isinstance(self.approval, dict):
            unknown = set(self.approval) - set(ACTION_KINDS)
            if unknown:
                raise ValueError(f"approval: unknown action kind(s) {sorted(unknown)}; known: {ACTION_KINDS}")
        if isinstance(self.threshold, float | int) and not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if isinstance(self.daily_budget, int) and self.daily_budget < 0:
            raise ValueError("dailyBudget must be 0 or more (null: no budget)")


DEFAULT_AUTOMATIONS = (
    Automation(name="taskpane"),
    # Workflows start from the task pane out of the box; a mail rule (and the finance webhook for
    # invoices) is what an admin or user adds.
    Automation(name="invoice_intake", workflow="invoice_intake", settings={"reviewTimeoutHours": 24}),
    Automation(name="meeting_followup", workflow="meeting_followup", settings={"reviewTimeoutHours": 24}),
)


def needs_person(automation: Automation, kind: str, confidence: float | None) -> bool:
    mode = automation.approval.get(kind, "always")
    if mode == "never":
        return False
    if mode == "below_threshold":
        return confidence is None or confidence < automation.threshold
    return True


_STRICTNESS = {"never": 0, "below_threshold": 1, "always": 2}


def _always_review(automation: Automation) -> bool:
    return bool(automation.settings.get("alwaysReview", True))


def loosenings(before: Automation, after: Automation) -> list[str]:
    """What a change makes less strict, in words ("webhook: always -> never"); empty when nothing."""
    out = []
    for kind in sorted(set(ACTION_KINDS) | set(before.approval) | set(after.approval)):
        old, new = before.approval.get(kind, "always"), after.approval.get(kind, "always")
        if _STRICTNESS[new] < _STRICTNESS[old]:
            out.append(f"{kind}: {old} -> {new}")
    if after.threshold < before.threshold:
        out.append(f"threshold: {before.threshold:g} -> {after.threshold:g}")
    if _always_review(before) and not _always_review(after):
        out.append("alwaysReview: on -> off")
    return out


class LooseningRefused(PermissionError):
    """A change that loosens approval, refused; `changes` says what it would loosen."""

    def __init__(self, message: str, changes: list[str]) -> None:
        super().__init__(message)
        self.changes = changes


class LooseningNotConfirmed(LooseningRefused):
    """Loosening needs the person's explicit confirmation, which the request did not carry."""


class LooseningForbidden(LooseningRefused):
    """IT forbids loosening approval on this computer (`allow_loosening_approval = false`)."""


_JSON = ("rule", "approval", "settings")


def to_row(automation: Automation) -> dict[str, Any]:
    row = msgspec.to_builtins(automation)
    out = {
        "name": automation.name,
        "workflow": automation.workflow,
        "enabled": int(automation.enabled),
        "threshold": automation.threshold,
        "daily_budget": automation.daily_budget,
        "enabled_at": automation.enabled_at,
        "updated_at": automation.updated_at,
        "updated_by": automation.updated_by,
        "updated_by_address": automation.updated_by_address,
    }
    for key in _JSON:
        out[key] = msgspec.json.encode(row[key]).decode()
    return out


def from_row(row: sqlite3.Row | dict[str, Any]) -> Automation:
    data = dict(row)
    for key in _JSON:
        data[key] = msgspec.json.decode(data[key])
    data["enabled"] = bool(data["enabled"])
    return msgspec.convert(
        {
            "name": data["name"],
            "workflow": data["workflow"],
            "enabled": data["enabled"],
            "rule": data["rule"],
            "approval": data["approval"],
            "threshold": data["threshold"],
            "dailyBudget": data["daily_budget"],
            "settings": data["settings"],
            "enabledAt": data["enabled_at"],
            "updatedAt": data["updated_at"],
            "updatedBy": data["updated_by"],
            "updatedByAddress": data.get("updated_by_address"),
        },
        Automation,
    )

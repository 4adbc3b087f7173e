"""The drift monitor's records and its API's bodies (server/ops/drift.py has the monitor itself)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from deskpilot.server.core.wire import WHITESPACE, In, Out

__all__ = [
    "DriftReport",
    "DriftSignalOut",
    "DriftWaitingOut",
    "RebaselineIn",
    "Rebaselined",
    "Signal",
    "UnknownDriftTask",
]


class UnknownDriftTask(LookupError):
    """A task drift has no inputs, finished runs or reference for."""


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """One signal of one check. `alarm`: at or over the threshold when built; as recorded, also while an
    alarm is held (over `drift_clear_ratio` x the threshold)."""

    task: str
    signal: str
    value: float
    threshold: float
    alarm: bool
    reference_n: int
    current_n: int
    window: dict[str, Any]  # when each window begins and ends


class DriftSignalOut(Out):
    task: str
    signal: str  # input_psi, input_centroid, label_psi, confidence_mean, review_rate, null_rate:<field>
    value: float  # PSI, cosine distance, or a rate's change (current minus reference)
    threshold: float
    alarm: bool
    since: str | None  # when the alarm began (ISO 8601 UTC); None while not in alarm
    at: str  # the check that measured `value`
    reference_n: int
    current_n: int


class DriftWaitingOut(Out):
    """A task whose reference was restarted and whose windows have not filled since."""

    task: str
    since: str  # when the reference restarted (ISO 8601 UTC)
    actor: str  # who restarted it
    inputs: int  # input samples gathered since (the reference takes the first `referenceSize`)
    runs: int  # runs finished ok since


# Printable, with at least one character that is not a space (as a person's name in core.wire.Person).
_Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=rf"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f{WHITESPACE}][^\x00-\x1f\x7f]*$",
    ),
]


class RebaselineIn(In):
    """Accept a task's current state as its new normal. `actor`: who does ("api" is recorded otherwise)."""

    task: _Name
    actor: _Name | None = None


class Rebaselined(Out):
    """What a rebaseline did to one task."""

    task: str
    since: str  # the new reference's start (ISO 8601 UTC)
    actor: str
    signals_in_alarm: list[str]  # cleared without a drift.cleared event each
    samples_deleted: int  # input embeddings of the old reference and window
    event: str  # the id of the chained drift.rebaselined event


class DriftReport(Out):
    enabled: bool
    reference_size: int
    window_size: int
    check_every: int
    psi_threshold: float
    centroid_threshold: float
    rate_threshold: float
    clear_ratio: float  # an alarm clears under this share of its threshold
    pending: int  # inputs waiting to be embedded
    dropped: int  # inputs dropped since the server started (the queue was full)
    signals: list[DriftSignalOut]  # the latest value of every task's signals
    alarms: list[DriftSignalOut]  # those in alarm
    waiting: list[DriftWaitingOut]  # tasks rebaselined whose windows have not filled since

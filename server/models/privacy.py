"""What may leave the machine: a remote profile's PII policy applied to a request, and its record.

A request to a local profile goes as it is. For a remote one, the profile's `pii` policy decides:
- `mask`: each email address, phone number, IBAN, card number, postal address and person name becomes a
  placeholder (`<PERSON_1>`, the same value the same placeholder) before the request is sent, and the
  answer's placeholders are put back as it streams (`deskpilot.inference.pii`);
- `block`: a request holding any of them is not sent to that profile (the router goes on to the next);
- `allow`: sent as is.
Lineage records the policy, the categories masked and how many, and the SHA-256 of exactly what was sent,
so a compliance officer can prove what left the machine without the log holding the values.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from deskpilot.inference import GenerationRequest, Message
from deskpilot.server.models.router import Candidate

if TYPE_CHECKING:
    from deskpilot.inference.pii import PiiDetector, Redaction, StreamRestorer

__all__ = ["Egress", "PiiBlocked", "Privacy"]


class PiiBlocked(Exception):
    """The profile's policy is `block` and the request holds personal data (named by category only)."""


class Egress(msgspec.Struct, kw_only=True):
    """A request as it will leave the machine, and what lineage records of it."""

    request: GenerationRequest
    record: dict[str, Any]
    masked: dict[str, int] | None = None
    redaction: Any = None  # the request's `Redaction` under `mask`

    def restorer(self) -> StreamRestorer | None:
        return self.redaction.restorer() if self.redaction is not None else None


def _digest(request: GenerationRequest) -> str:
    sent = [[m.role, m.content] for m in request.messages]
    return "sha256:" + hashlib.sha256(msgspec.json.encode(sent)).hexdigest()


class Privacy:
    """Applies the policies. The detector (Presidio's recognizers and ours) loads on the first request to
    a remote profile, never for local ones."""

    def __init__(self, detector: Callable[[], PiiDetector] | None = None) -> None:
        self._make = detector
        self._detector: PiiDetector | None = None
        self._lock = threading.Lock()

    def detector(self) -> PiiDetector:
        with self._lock:
            if self._detector is None:
                if self._make is None:
                    from deskpilot.inference.pii import PiiDetector  # loads Presidio: only when needed

                    self._make = PiiDetector
                self._detector = self._make()
            return self._detector

    def warm(self) -> None:
        """Load the detector now (seconds: Presidio imports spaCy), so the first remote request does not
        wait for it. The server calls this at start when a remote profile masks or blocks."""
        self.detector().load()

    async def egress(self, candidate: Candidate, request: GenerationRequest) -> Egress | None:
        """None for a local profile; else the request as it may leave, or `PiiBlocked`."""
        if candidate.local:
            return None
        policy = candidate.profile.pii
        if policy == "allow":
            return Egress(request=request, record={"policy": "allow", "sent_digest": _digest(request)})
        # Off the event loop: finding names and addresses in a long thread takes some milliseconds.
        return await anyio.to_thread.run_sync(self._apply, policy, request)

    def _apply(self, policy: str, request: GenerationRequest) -> Egress:
        from deskpilot.inference.pii import Redaction

        redaction: Redaction = Redaction(self.detector())
        messages = tuple(Message(m.role, redaction.mask(m.content)) for m in request.messages)
        counts = dict(sorted(redaction.counts.items()))
        if policy == "block" and counts:
            found = ", ".join(f"{n} {c}" for c, n in counts.items())
            raise PiiBlocked(f"the request holds personal data ({found}) and the profile's policy is block")
        if policy == "block":
            return Egress(request=request, record={"policy": "block", "sent_digest": _digest(request)})
        masked = msgspec.structs.replace(request, messages=messages)
        record = {"policy": "mask", "masked": counts, "sent_digest": _digest(masked)}
        return Egress(request=masked, record=record, masked=counts, redaction=redaction)

"""Serialized access to one loaded model, with a bounded wait queue.

A loaded model runs one generation at a time. Callers beyond the one running wait in FIFO order, up to
`max_waiting`; one more is refused at once with `ModelBusy`, which the API turns into 429 + Retry-After.
Refusing is better than queueing without bound: a task pane that gets 429 can say "busy, retrying in 3 s",
while a request stuck behind ten others just hangs. Retry-After is an estimate from recent hold times.

Admission happens before an HTTP response starts, the wait for the model inside the stream. So admission
hands out a `Ticket` that holds a place in line at once (otherwise ten requests arriving together would
all be admitted before the first one took the model). The ticket is used by `slot()`, or released:
explicitly, or by whoever owns a stream that never started.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["ModelBusy", "ModelGate", "Ticket"]


class ModelBusy(Exception):
    def __init__(self, retry_after: int, waiting: int) -> None:
        super().__init__(f"the model is busy ({waiting} requests waiting); retry in {retry_after} s")
        self.retry_after = retry_after
        self.waiting = waiting


class Ticket:
    """A place in line. Releasing it twice, or after it was used, does nothing."""

    __slots__ = ("_gate", "_in_line")

    def __init__(self, gate: ModelGate) -> None:
        self._gate = gate
        self._in_line = True

    @property
    def gate(self) -> ModelGate:
        """The gate this place is in line for."""
        return self._gate

    def release(self) -> None:
        if self._in_line:
            self._in_line = False
            self._gate._waiting -= 1


class ModelGate:
    def __init__(self, max_waiting: int, *, concurrency: int = 1) -> None:
        """`concurrency`: generations at once (1 for a model in this process; a remote server batches)."""
        self.max_waiting = max_waiting
        self._lock = asyncio.Semaphore(concurrency)
        self._waiting = 0
        self._recent_hold_s: deque[float] = deque([1.0], maxlen=16)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def waiting(self) -> int:
        return self._waiting

    def retry_after(self) -> int:
        """Seconds until a new request would likely get the model: everyone ahead, at the recent pace."""
        mean = sum(self._recent_hold_s) / len(self._recent_hold_s)
        return max(1, math.ceil(mean * (self._waiting + 1)))

    def reserve(self) -> Ticket:
        """A place in line, or `ModelBusy` at once if the line is full."""
        if int(self._lock.locked()) + self._waiting >= 1 + self.max_waiting:
            raise ModelBusy(self.retry_after(), self._waiting)
        self._waiting += 1
        return Ticket(self)

    @asynccontextmanager
    async def slot(self, ticket: Ticket | None = None) -> AsyncIterator[None]:
        """Hold the model. Waits in line; a cancelled waiter leaves the line at once."""
        ticket = ticket or self.reserve()
        try:
            await self._lock.acquire()
        finally:
            ticket.release()  # in the lock now, or out of the line
        started = time.monotonic()
        try:
            yield
        finally:
            self._recent_hold_s.append(time.monotonic() - started)
            self._lock.release()

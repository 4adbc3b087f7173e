"""Serialized access to one loaded model, with a bounded wait queue.

A loaded model runs one generation at a time. Callers beyond the one running wait in FIFO order, up to
`max_waiting`; one more is refused at once with `ModelBusy`, which the API turns into 429 + Retry-After.
Refusing is better than queueing without bound: a task pane that gets 429 can say "busy, retrying in 3 s",
while a request stuck behind ten others just hangs. Retry-After is an estimate from recent hold times.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["ModelBusy", "ModelGate"]


class ModelBusy(Exception):
    def __init__(self, retry_after: int, waiting: int) -> None:
        super().__init__(f"the model is busy ({waiting} requests waiting); retry in {retry_after} s")
        self.retry_after = retry_after
        self.waiting = waiting


class ModelGate:
    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._lock = asyncio.Lock()
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

    def check_admission(self) -> None:
        """Refuse now, before a response starts, if the queue is full (raises `ModelBusy`)."""
        if self._lock.locked() and self._waiting >= self.max_waiting:
            raise ModelBusy(self.retry_after(), self._waiting)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold the model. Waits in line; a cancelled waiter leaves the line at once."""
        self.check_admission()
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        started = time.monotonic()
        try:
            yield
        finally:
            self._recent_hold_s.append(time.monotonic() - started)
            self._lock.release()

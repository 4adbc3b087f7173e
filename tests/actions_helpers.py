"""In-process helpers for action and workflow tests: a recording queue, fake adapters, a scripted AI."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from typing import Any

from deskpilot.server.actions._types import Effect, PermanentError, TransientError


class RecordingQueue:
    """Stands in for TaskQueue in logic tests: messages are kept in order and `drain()` runs them."""

    def __init__(self) -> None:
        self.messages: deque[tuple[str, str, float | None]] = deque()
        self.runtime: Any = None

    def bind(self, runtime: Any) -> None:
        self.runtime = runtime

    def _put(self, method: str, subject: str, delay: float | None) -> None:
        self.messages.append((method, subject, time.monotonic() + (delay or 0.0)))

    def execute(self, action_id: str, *, delay: float | None = None) -> None:
        self._put("execute_action", action_id, delay)

    def compensate(self, action_id: str, *, delay: float | None = None) -> None:
        self._put("compensate_action", action_id, delay)

    def advance(self, workflow_id: str, *, delay: float | None = None) -> None:
        self._put("advance_workflow", workflow_id, delay)

    def close(self) -> None:
        pass

    def drain(
        self, *, include_delayed: bool = True, limit: int = 1000, max_wait: float = 3.0
    ) -> list[dict[str, Any]]:
        """Run due messages in order, like a consumer; with `include_delayed`, wait for delayed ones too
        (those due within `max_wait` seconds; later ones stay queued)."""
        done = []
        for _ in range(limit):
            now = time.monotonic()
            due = next((m for m in self.messages if m[2] <= now), None)
            if due is None:
                if (
                    not include_delayed
                    or not self.messages
                    or min(m[2] for m in self.messages) - now > max_wait
                ):
                    break
                time.sleep(max(0.0, min(m[2] for m in self.messages) - now))
                continue
            self.messages.remove(due)
            done.append(getattr(self.runtime, due[0])(due[1]))
        return done


class FakeAdapter:
    """Effects in a dict keyed by idempotency key, like a receiver that dedupes; failures on demand."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.effects: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.fail: deque[type[Exception]] = deque()
        self.always_fail: type[Exception] | None = None
        self.lock = threading.Lock()

    def execute(self, key: str, params: Any) -> Effect:
        with self.lock:
            self.calls += 1
            if self.always_fail:
                raise self.always_fail("receiver said no")
            if self.fail:
                raise self.fail.popleft()("receiver hiccup")
            existed = key in self.effects
            self.effects.setdefault(key, {"params": params})
            return Effect(ref=f"{self.kind}:{key[-8:]}", existed=existed)

    def compensate(self, key: str, params: Any, effect: Effect) -> None:
        with self.lock:
            self.effects.pop(key, None)

    def close(self) -> None:
        pass


def fake_adapters() -> dict[str, FakeAdapter]:
    return {
        k: FakeAdapter(k) for k in ("draft_reply", "calendar_event", "todo_task", "webhook", "file_document")
    }


class ScriptedAI:
    """The workflow AI with fixed answers; records calls."""

    def __init__(
        self,
        *,
        label: str = "invoice",
        data: dict[str, Any] | None = None,
        confidence: float = 0.95,
        review: str | None = None,
    ) -> None:
        self.label, self.confidence, self.review = label, confidence, review
        self.data = (
            data
            if data is not None
            else {
                "vendor": "Contoso Ltd",
                "invoiceNumber": "INV-7",
                "issueDate": "2026-11-01",
                "dueDate": "2026-12-01",
                "currency": "EUR",
                "total": 120.0,
                "lineItems": [],
            }
        )
        self.calls: list[str] = []
        self.fail_next = 0

    def classify(self, text: str, labels: list[str], source_ref: str | None = None) -> dict[str, Any]:
        self.calls.append("classify")
        return {
            "runId": "run-classify-" + uuid.uuid4().hex[:8],
            "label": self.label,
            "confidence": self.confidence,
        }

    def extract(self, schema: str, text: str, source_ref: str | None = None) -> dict[str, Any]:
        self.calls.append(f"extract:{schema}")
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("model hiccup")
        return {
            "runId": "run-extract-" + uuid.uuid4().hex[:8],
            "schema": schema,
            "data": self.data,
            "confidence": self.confidence,
            "review": self.review,
            "reasons": [],
            "rules": [],
        }

    def close(self) -> None:
        pass


__all__ = ["FakeAdapter", "PermanentError", "RecordingQueue", "ScriptedAI", "TransientError", "fake_adapters"]

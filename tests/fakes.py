"""The test doubles of the seams that have no fake in the product package, in one place.

Every seam has a protocol, a fake, and one contract suite in `tests/contracts/` that the fake passes
alongside the real implementations. Where each fake lives:

| seam (protocol)                                        | fake                                      |
|--------------------------------------------------------|-------------------------------------------|
| inference backend (`deskpilot.inference.Backend`)      | `ScriptedBackend` (`inference/fake.py`)   |
| embedder (`deskpilot.indexes.Embedder`)                | `HashEmbedder` (`indexes/embedding.py`)   |
| vector index (`indexes._vectors.VectorSearch`)         | the exact kind of `VectorIndex` itself    |
| task queue (`server.core.queue.TaskQueue` over Huey)   | `RecordingQueue` here: Huey's MemoryHuey  |
| workflow AI (`server.workflows.ai.WorkflowAI`)         | `ScriptedAI` here                         |
| action adapters (`server.actions._types.ActionAdapter`)| `FakeAdapter` here                        |
| Graph transport (`server.connectors.graph.GraphTransport`) | the Graph stand-in, a real HTTP server |

The two product-side fakes need nothing beyond the runtime dependencies; the ones here may use anything
the test extra installs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from huey import MemoryHuey, signals
from huey.api import Task
from keyring.backend import KeyringBackend

from deskpilot.inference.extraction import SchemaError, load_schema
from deskpilot.server.actions._types import Effect, PermanentError, TransientError
from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.lineage import LineageStore, RunEnd, RunStart
from deskpilot.server.workflows.ai import StepFailed

__all__ = [
    "FakeAdapter",
    "FakeReceiver",
    "PermanentError",
    "RecordingQueue",
    "ScriptedAI",
    "TransientError",
    "drain",
    "fake_adapters",
]


# -- the queue -----------------------------------------------------------------------------------------------


def _now(huey: Any) -> datetime:
    """Huey's clock: naive UTC for a `utc=True` Huey (how it stores an eta), naive local time otherwise."""
    return datetime.now(UTC).replace(tzinfo=None) if huey.utc else datetime.now()


def _next_due(huey: Any) -> Task | None:
    """The next message a consumer would run now: scheduled ones that fell due go back to the queue, and
    a delayed message taken off the queue goes to the schedule, as Huey's consumer and scheduler do."""
    for task in huey.read_schedule(_now(huey)):
        huey.enqueue(task)
    while (task := huey.dequeue()) is not None:
        if huey.ready_to_run(task, _now(huey)):
            return task  # type: ignore[no-any-return]
        huey.add_schedule(task)
    return None


def drain(
    queue: TaskQueue, *, include_delayed: bool = True, limit: int = 1000, max_wait: float = 3.0
) -> list[dict[str, Any]]:
    """Run the due messages of any `TaskQueue`, in this thread, the way Huey's consumer runs them
    (`Huey.execute`), and return their outcomes. With `include_delayed`, wait for delayed ones too (those
    due within `max_wait` seconds; later ones stay queued). A task that raises, which Huey's consumer
    would only log, is raised here, so that a test sees it."""
    huey = queue.huey
    errors: list[BaseException] = []

    def failed(signal: str, task: Task, exc: BaseException | None = None) -> None:
        errors.append(exc or RuntimeError(f"{task.name} failed"))

    huey.signal(signals.SIGNAL_ERROR)(failed)
    try:
        done: list[dict[str, Any]] = []
        while len(done) < limit:
            task = _next_due(huey)
            if task is None:
                etas = [t.eta for t in huey.scheduled()]
                if not include_delayed or not etas:
                    break
                wait = (min(etas) - _now(huey)).total_seconds()
                if wait > max_wait:
                    break
                time.sleep(max(0.0, wait))
                continue
            outcome = huey.execute(task)
            if errors:
                raise errors[0]
            done.append(outcome)
        return done
    finally:
        huey.disconnect_signal(failed, signals.SIGNAL_ERROR)


class RecordingQueue(TaskQueue):
    """The real `TaskQueue` over Huey's `MemoryHuey`: messages wait in memory until `drain()` runs them in
    the test's thread, so logic tests step through what a consumer would do, deterministically."""

    def __init__(self) -> None:
        super().__init__(MemoryHuey("deskpilot-tests", results=False, utc=True))

    @property
    def messages(self) -> list[tuple[str, str, datetime | None]]:
        """(task name, subject id, eta) of every message not yet run, queued ones first."""
        tasks = [*self.huey.pending(), *self.huey.scheduled()]
        return [(t.name, t.args[0], t.eta) for t in tasks]

    def drain(
        self, *, include_delayed: bool = True, limit: int = 1000, max_wait: float = 3.0
    ) -> list[dict[str, Any]]:
        return drain(self, include_delayed=include_delayed, limit=limit, max_wait=max_wait)


# -- action adapters -----------------------------------------------------------------------------------------


class FakeReceiver:
    """The far side of a fake adapter: effects keyed by idempotency key, like a receiver that dedupes,
    and failures on demand. Several `FakeAdapter`s (a new worker's) may share one."""

    def __init__(self) -> None:
        self.effects: dict[str, dict[str, Any]] = {}  # live effects
        self.made: list[dict[str, Any]] = []  # every effect ever made, removed ones included
        self.calls = 0
        self.fail: deque[type[Exception]] = deque()
        self.always_fail: type[Exception] | None = None
        self.lose_answers = 0  # the next N effects are made, and their answer is lost on the way back
        self.lock = threading.Lock()


class FakeAdapter:
    """An `ActionAdapter` whose receiver is a `FakeReceiver` in memory (its own unless one is given)."""

    def __init__(self, kind: str, receiver: FakeReceiver | None = None) -> None:
        self.kind = kind
        self.receiver = receiver or FakeReceiver()

    # The receiver's state, as tests of the outbox reach it through the adapter.
    @property
    def effects(self) -> dict[str, dict[str, Any]]:
        return self.receiver.effects

    @property
    def calls(self) -> int:
        return self.receiver.calls

    @property
    def fail(self) -> deque[type[Exception]]:
        return self.receiver.fail

    @property
    def always_fail(self) -> type[Exception] | None:
        return self.receiver.always_fail

    @always_fail.setter
    def always_fail(self, error: type[Exception] | None) -> None:
        self.receiver.always_fail = error

    def execute(self, key: str, params: Any) -> Effect:
        receiver = self.receiver
        with receiver.lock:
            receiver.calls += 1
            if receiver.always_fail:
                raise receiver.always_fail("receiver said no")
            if receiver.fail:
                raise receiver.fail.popleft()("receiver hiccup")
            existed = key in receiver.effects
            if not existed:
                effect = {"id": f"{self.kind}:{key[-8:]}", "key": key, "params": params, "gone": False}
                receiver.effects[key] = effect
                receiver.made.append(effect)
            if receiver.lose_answers and not existed:
                receiver.lose_answers -= 1
                raise TransientError("the connection closed before the receiver's answer")
            return Effect(ref=receiver.effects[key]["id"], existed=existed)

    def compensate(self, key: str, params: Any, effect: Effect) -> None:
        with self.receiver.lock:
            removed = self.receiver.effects.pop(key, None)
            if removed is not None:
                removed["gone"] = True

    def close(self) -> None:
        pass


def fake_adapters() -> dict[str, FakeAdapter]:
    return {
        k: FakeAdapter(k) for k in ("draft_reply", "calendar_event", "todo_task", "webhook", "file_document")
    }


# -- the workflow AI -----------------------------------------------------------------------------------------


def record_run(
    lineage: LineageStore,
    task: str,
    confidence: float | None,
    *,
    status: str = "ok",
    run_id: str | None = None,
) -> str:
    """A closed run in lineage, as a model run records one, with the confidence it ended with."""
    digest = "sha256:" + "0" * 64
    start = RunStart(
        task=task,
        template_id="scripted",
        template_hash=digest,
        model_id="scripted",
        weights_digest=digest,
        backend="fake",
        parameters={},
        input_digest=digest,
    )
    run_id = lineage.open_run(start, run_id=run_id)
    lineage.close_run(run_id, RunEnd(status=status, confidence=confidence))
    return run_id


class ScriptedAI:
    """The workflow AI with fixed answers; records calls. Like the model, it answers only with one of the
    labels it is given and knows only the schemas that exist (built in, or files in `schemas_path`).
    Given a `lineage` store, it records each answer there as a run with its confidence, as the model
    does: the outbox reads a proposal's confidence from the run it cites."""

    def __init__(
        self,
        *,
        label: str = "invoice",
        data: dict[str, Any] | None = None,
        confidence: float = 0.95,
        review: str | None = None,
        schemas_path: Path | None = None,
        lineage: LineageStore | None = None,
    ) -> None:
        self.label, self.confidence, self.review = label, confidence, review
        self.lineage = lineage
        self.schemas_path = schemas_path
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
            "runId": self._run("classify"),
            "label": self.label if self.label in labels else labels[0],
            "confidence": self.confidence,
        }

    def extract(self, schema_name: str, text: str, source_ref: str | None = None) -> dict[str, Any]:
        self.calls.append(f"extract:{schema_name}")
        try:
            schema = load_schema(schema_name, self.schemas_path)
        except SchemaError as exc:
            raise StepFailed(str(exc)) from exc
        if self.fail_next:
            self.fail_next -= 1
            raise StepFailed("model hiccup")
        return {
            "runId": self._run("extract"),
            "schema": schema.schema_id,  # as ModelAI answers: name@version
            "data": self.data,
            "confidence": self.confidence,
            "review": self.review,
            "reasons": [],
            "rules": [],
        }

    def _run(self, task: str) -> str:
        run_id = f"run-{task}-" + uuid.uuid4().hex[:8]
        if self.lineage is not None:
            record_run(self.lineage, task, self.confidence, run_id=run_id)
        return run_id

    def close(self) -> None:
        pass


class MemoryKeyring(KeyringBackend):
    """The OS keyring's part, in memory (`keyring.set_keyring(MemoryKeyring())`): API keys for model
    profiles in tests that run a server in this process."""

    priority = 1  # type: ignore[assignment]  # keyring declares it a classproperty

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)

"""The task queue: Huey carrying ids only; SqliteHuey in the app data folder by default.

A message says "look at action X" or "advance workflow Y"; what to do is read from the outbox when the
task runs, so a duplicate message, a stale one, or one for an action that was meanwhile rejected or
held does nothing. The server only enqueues; the consumer (`deskpilot worker`) binds a `Runtime` and
runs the tasks. Both sides register the same task names, which is all Huey needs to route a message.

`TaskQueue(huey)` takes any Huey: `TaskQueue.sqlite(settings)` in production, Huey's own `MemoryHuey` in
tests, and a `RedisHuey` would serve a pool of workers on several machines (a team server).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from huey import Huey, SqliteHuey

from deskpilot.server.settings import Settings

__all__ = ["Runtime", "TaskQueue"]

log = logging.getLogger("deskpilot.actions")


class Runtime(Protocol):
    """What the consumer's tasks run against (built by `worker.py`)."""

    def execute_action(self, action_id: str) -> dict[str, Any]: ...

    def compensate_action(self, action_id: str) -> dict[str, Any]: ...

    def advance_workflow(self, workflow_id: str) -> dict[str, Any]: ...


class TaskQueue:
    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._runtime: Runtime | None = None
        self._execute = self.huey.task(name="execute_action")(self._run("execute_action"))
        self._compensate = self.huey.task(name="compensate_action")(self._run("compensate_action"))
        self._advance = self.huey.task(name="advance_workflow")(self._run("advance_workflow"))

    @classmethod
    def sqlite(cls, settings: Settings) -> TaskQueue:
        settings.home.mkdir(parents=True, exist_ok=True)
        # results=False: the outbox is where outcomes live; Huey's result store would be a second truth.
        # timeout: the busy wait for the file's write lock, shared by the server and the consumer.
        return cls(
            SqliteHuey("deskpilot", filename=str(settings.queue_path), results=False, utc=True, timeout=30)
        )

    def bind(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _run(self, method: str) -> Callable[[str], dict[str, Any]]:
        def task(subject_id: str) -> dict[str, Any]:
            if self._runtime is None:
                raise RuntimeError("this process only enqueues; run `deskpilot worker` to consume")
            outcome: dict[str, Any] = getattr(self._runtime, method)(subject_id)
            log.debug("%s %s: %s", method, subject_id, outcome)
            return outcome

        task.__name__ = method
        return task

    def _send(self, task: Any, subject_id: str, delay: float | None) -> None:
        if delay and delay > 0:
            task.schedule(args=(subject_id,), delay=delay)
        else:
            task(subject_id)

    def execute(self, action_id: str, *, delay: float | None = None) -> None:
        self._send(self._execute, action_id, delay)

    def compensate(self, action_id: str, *, delay: float | None = None) -> None:
        self._send(self._compensate, action_id, delay)

    def advance(self, workflow_id: str, *, delay: float | None = None) -> None:
        self._send(self._advance, workflow_id, delay)

    def pending(self) -> int:
        return int(self.huey.pending_count())

    def close(self) -> None:
        self.huey.storage.close()

"""The task queue contract (`deskpilot.server.core.queue.TaskQueue`), run over every Huey storage.

`TaskQueue(huey)` takes any Huey; what the outbox and the workflow engine rely on is the same for all of
them: each message reaches the bound runtime's method of the same name, with its subject id, in the
order sent; a delayed message does not run before its time; a process that only enqueues (the server)
never runs a task itself; Huey's own consumer, the one `deskpilot worker` runs, delivers every message.
A message is delivered as often as it was sent: the outbox, not the queue, makes a duplicate harmless.

Storages: `MemoryHuey`, as the logic tests use it (`RecordingQueue`), and `SqliteHuey` in the app data
folder (`TaskQueue.sqlite`), what the server and the worker share. Both `unit`: a SQLite file is how the
queue keeps its state. A `RedisHuey` (a team server's shared worker pool) joins `QUEUES`, marked
`integration`, against a local redis-server.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes import RecordingQueue, drain

from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.settings import load_settings


def _sqlite() -> TaskQueue:
    return TaskQueue.sqlite(load_settings())  # in the test's own app data folder (conftest.app_home)


QUEUES = [
    pytest.param(RecordingQueue, id="memory", marks=pytest.mark.unit),
    pytest.param(_sqlite, id="sqlite", marks=pytest.mark.unit),
]


class Runtime:
    """Records what the consumer asked for, and when; answers like the worker's runtime does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def _record(self, method: str, subject: str) -> dict[str, Any]:
        with self.lock:
            self.calls.append((method, subject, time.monotonic()))
        return {"did": method, "subject": subject}

    def execute_action(self, action_id: str) -> dict[str, Any]:
        return self._record("execute_action", action_id)

    def compensate_action(self, action_id: str) -> dict[str, Any]:
        return self._record("compensate_action", action_id)

    def advance_workflow(self, workflow_id: str) -> dict[str, Any]:
        return self._record("advance_workflow", workflow_id)

    def seen(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(method, subject) for method, subject, _ in self.calls]


@pytest.fixture(params=QUEUES)
def make_queue(request: pytest.FixtureRequest) -> Iterator[Callable[[], TaskQueue]]:
    made: list[TaskQueue] = []

    def make() -> TaskQueue:
        made.append(request.param())
        return made[-1]

    yield make
    for queue in made:
        queue.close()


@pytest.fixture
def runtime() -> Runtime:
    return Runtime()


@pytest.fixture
def queue(make_queue: Callable[[], TaskQueue], runtime: Runtime) -> TaskQueue:
    bound = make_queue()
    bound.bind(runtime)
    return bound


def test_each_message_reaches_the_runtime_method_of_its_name_in_order(
    queue: TaskQueue, runtime: Runtime
) -> None:
    queue.execute("a1")
    queue.compensate("a2")
    queue.advance("w1")
    queue.execute("a1")  # sent twice, delivered twice
    assert queue.pending() == 4
    outcomes = drain(queue, include_delayed=False)
    sent = [
        ("execute_action", "a1"),
        ("compensate_action", "a2"),
        ("advance_workflow", "w1"),
        ("execute_action", "a1"),
    ]
    assert runtime.seen() == sent
    assert outcomes == [{"did": method, "subject": subject} for method, subject in sent]
    assert queue.pending() == 0 and drain(queue) == []


def test_a_delayed_message_waits_for_its_time(queue: TaskQueue, runtime: Runtime) -> None:
    sent = time.monotonic()
    queue.execute("later", delay=0.4)
    queue.advance("now")
    drain(queue, include_delayed=False)
    assert runtime.seen() == [("advance_workflow", "now")]
    drain(queue, max_wait=2.0)  # waits for it, as a consumer's scheduler would
    assert runtime.seen() == [("advance_workflow", "now"), ("execute_action", "later")]
    assert runtime.calls[-1][2] - sent >= 0.4


def test_a_process_that_only_enqueues_never_runs_a_task(make_queue: Callable[[], TaskQueue]) -> None:
    server_side = make_queue()  # never bound to a runtime, like the HTTP server's queue
    server_side.execute("a1")
    with pytest.raises(RuntimeError, match="only enqueues"):
        drain(server_side)


def test_hueys_consumer_delivers_every_message(queue: TaskQueue, runtime: Runtime) -> None:
    """The consumer `deskpilot worker` runs (threads, polling), on this queue's storage."""
    consumer = queue.huey.create_consumer(
        workers=2, worker_type="thread", initial_delay=0.01, backoff=1.1, max_delay=0.05, periodic=False
    )
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    consumer.start()
    try:
        for i in range(5):
            queue.execute(f"a{i}")
        queue.advance("w-late", delay=0.2)
        deadline = time.monotonic() + 10
        while len(runtime.seen()) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        consumer.stop(graceful=True)
        for sig, handler in handlers.items():  # the consumer installs its own
            signal.signal(sig, handler)
    assert sorted(runtime.seen()) == sorted(
        [*(("execute_action", f"a{i}") for i in range(5)), ("advance_workflow", "w-late")]
    )
    assert queue.pending() == 0

"""The queue's consumer: `deskpilot worker`, or the child process `deskpilot serve` starts.

One consumer per app data folder holds `worker.lock` (flock); a second one waits for it, so a server
restarted after a crash, while the old worker still runs, never doubles the work, and takes over when
that worker goes. On start it recovers what a crash left (`Outbox.recover`, `WorkflowEngine.recover`),
then runs Huey's consumer with worker threads. A sweeper thread repeats the recovery every few seconds
for what no message will bring back: a queue message lost between the outbox commit and the enqueue
(a server killed right there), a held action whose daily budget renewed, a compensation to retry.

The tasks are plain functions that return what they did, so a log line or a test reads the outcome.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
from opentelemetry.trace import Span

from deskpilot.server.actions import (
    PARAMS_TYPES,
    ActionAdapter,
    PermanentError,
    TransientError,
    build_adapters,
)
from deskpilot.server.actions.outbox import ActionStateError, current_owner
from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.core.telemetry import Telemetry
from deskpilot.server.ops.retention import PurgeReport
from deskpilot.server.services import Services
from deskpilot.server.settings import SERVER_PID_ENV, Settings
from deskpilot.server.workflows.ai import ModelAI, WorkflowAI
from deskpilot.server.workflows.services import WorkflowServices

__all__ = ["WorkerLock", "WorkerRuntime", "run_worker"]

log = logging.getLogger("deskpilot.actions")
_MAX_BACKOFF = 300.0


class WorkerLock:
    """flock on `<home>/worker.lock`, which also names the holder's pid (for `doctor` and tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, wait: bool = True, should_stop: Callable[[], bool] = lambda: False) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or should_stop():
                    os.close(fd)
                    return False
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class WorkerRuntime:
    """The tasks, bound to this process's stores, adapters and (lazily) model."""

    def __init__(
        self,
        settings: Settings,
        *,
        adapters: Mapping[str, ActionAdapter] | None = None,
        ai: WorkflowAI | None = None,
        queue: TaskQueue | None = None,
        rng: random.Random | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.parts = Services(settings, queue=queue, max_waiting=64, telemetry=telemetry)
        # Each task is a trace of its own (OTLP when `otel_endpoint` is set, like the server's requests).
        self.telemetry = self.parts.telemetry
        self.lineage = self.parts.lineage
        self.queue = self.parts.queue
        self.adapters = adapters if adapters is not None else build_adapters(settings)
        # Waiting in line is fine for background work: every worker thread may queue for the model.
        self.ai: WorkflowAI = ai or ModelAI(
            self.parts.models, self.lineage, settings, telemetry=self.parts.telemetry
        )
        self.services = WorkflowServices.create(
            settings,
            self.lineage,
            self.queue,
            ai=self.ai,
            reviews=self.parts.reviews,
        )
        self.outbox, self.engine = self.services.outbox, self.services.engine
        self.rng = rng or random.Random()
        self.queue.bind(self)

    # -- tasks -----------------------------------------------------------------------------------------

    def execute_action(self, action_id: str) -> dict[str, Any]:
        with self.telemetry.span("action.execute", action_id=action_id) as span:
            return _did(span, self._execute_action(action_id))

    def _execute_action(self, action_id: str) -> dict[str, Any]:
        owner = current_owner()
        record = self.outbox.claim(action_id, owner)
        if record is None:
            return {"action": action_id, "did": "nothing"}
        params = msgspec.convert(record.params, PARAMS_TYPES[record.kind])
        try:
            effect = self.adapters[record.kind].execute(record.key, params)
        except PermanentError as exc:
            done = self.outbox.attempt_failed(action_id, owner, str(exc), None)
        except Exception as exc:  # TransientError, or a bug: retried, then failed
            if not isinstance(exc, TransientError):
                log.exception("action %s (%s) raised", action_id, record.kind)
            retry_in = self._backoff(record.failures + 1)
            done = self.outbox.attempt_failed(action_id, owner, f"{type(exc).__name__}: {exc}", retry_in)
            if retry_in is not None:
                self.queue.execute(action_id, delay=retry_in)
        else:
            done = self.outbox.executed(action_id, owner, effect)
        if record.workflow_id and done.status in ("executed", "failed"):
            self.queue.advance(record.workflow_id)
        return {"action": action_id, "did": done.status, "attempt": record.attempts}

    def _backoff(self, failures: int) -> float | None:
        """Seconds until the next attempt after `failures` failed ones; None: failed for good. Attempts a
        crash cut short do not count: a worker killed five times must not use up an action's retries."""
        if failures >= self.settings.action_max_attempts:
            return None
        ceiling = min(_MAX_BACKOFF, self.settings.action_backoff_seconds * 2.0 ** (failures - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def compensate_action(self, action_id: str) -> dict[str, Any]:
        with self.telemetry.span("action.compensate", action_id=action_id) as span:
            return _did(span, self._compensate_action(action_id))

    def _compensate_action(self, action_id: str) -> dict[str, Any]:
        owner = current_owner()
        record = self.outbox.claim_compensation(action_id, owner)
        if record is None or record.effect is None:
            return {"action": action_id, "did": "nothing"}
        params = msgspec.convert(record.params, PARAMS_TYPES[record.kind])
        try:
            self.adapters[record.kind].compensate(record.key, params, record.effect)
        except Exception as exc:
            with contextlib.suppress(ActionStateError):
                self.outbox.compensated(action_id, owner, error=f"{type(exc).__name__}: {exc}")
            self.queue.compensate(action_id, delay=5.0)
            return {"action": action_id, "did": "compensation_retry"}
        done = self.outbox.compensated(action_id, owner)
        if record.workflow_id:
            self.queue.advance(record.workflow_id)
        return {"action": action_id, "did": done.status}

    def advance_workflow(self, workflow_id: str) -> dict[str, Any]:
        """Run a workflow's steps as far as they go; the span records which steps ran (`did`)."""
        with self.telemetry.span("workflow.advance", workflow_id=workflow_id) as span:
            return _did(span, self.engine.advance(workflow_id))

    # -- recovery --------------------------------------------------------------------------------------

    def recover(self, *, sweep: bool = False) -> dict[str, int]:
        """Re-enqueue everything a crash may have dropped (see `WorkflowServices.requeue`)."""
        return self.services.requeue(sweep=sweep)

    def purge_due(self) -> PurgeReport | None:
        """The retention purge, when one is due (server/ops/retention.py decides, from the chained record of
        the last one, so a restart neither skips nor repeats it). A legal hold makes it a no-op."""
        retention = self.parts.retention
        if not retention.due():
            return None
        with self.telemetry.span("retention.purge") as span:
            report = retention.purge_if_due()
            span.set_attribute("did", "nothing due" if report is None else f"{report.total()} purged")
        return report

    def close(self) -> None:
        self.ai.close()
        for adapter in self.adapters.values():
            adapter.close()
        self.parts.close()


def _did(span: Span, outcome: dict[str, Any]) -> dict[str, Any]:
    """Put what a task did on its span (steps run, or an action's new status), and return it."""
    did = outcome.get("did")
    span.set_attribute("did", ",".join(map(str, did)) if isinstance(did, list) else str(did))
    return outcome


def _never() -> bool:
    return False


def _orphan_check() -> Callable[[], bool]:
    """For a worker its server started (`DESKPILOT_SERVER_PID`): whether that server is gone.

    The kernel's parent-death signal (server/web/runner.py) is the fast path, but a signal can be lost:
    one that lands while the interpreter is still importing becomes a KeyboardInterrupt that a library's
    bare `except:` may swallow, and a server killed between fork and prctl() sends none. Being reparented
    is proof the server died, whatever happened to the signal."""
    server = os.environ.get(SERVER_PID_ENV)
    if not server or not server.isdigit():
        return _never
    return lambda: os.getppid() != int(server)


def _start_watchers(
    runtime: WorkerRuntime, stop: threading.Event, sweep_seconds: float, orphaned: Callable[[], bool]
) -> None:
    """The sweeper (recovery for what no message will bring back) and, for a worker its server started,
    a watch that stops the worker gracefully once that server is gone."""

    def sweep() -> None:
        while not stop.wait(sweep_seconds):
            try:
                runtime.recover(sweep=True)
            except Exception:
                log.exception("sweep failed")
            try:
                runtime.purge_due()
            except Exception:
                log.exception("retention purge failed; the next sweep tries again")

    threading.Thread(target=sweep, name="outbox-sweeper", daemon=True).start()
    if orphaned is _never:
        return

    def watch_server() -> None:
        while not stop.wait(0.5):
            if orphaned():
                log.warning("worker %d: its server is gone; stopping", os.getpid())
                os.kill(os.getpid(), signal.SIGINT)  # the consumer's graceful stop
                return

    threading.Thread(target=watch_server, name="server-watch", daemon=True).start()


def run_worker(settings: Settings, *, threads: int | None = None, sweep_seconds: float = 5.0) -> None:
    """Run the consumer until SIGINT/SIGTERM (graceful: running tasks finish).

    Until the consumer runs, a signal only sets a flag, so a worker stopped while it starts (its server
    stopped right after starting it) closes its databases cleanly instead of dying halfway through
    opening them."""
    stop = threading.Event()
    lock = WorkerLock(settings.home / "worker.lock")
    settings.home.mkdir(parents=True, exist_ok=True)
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    orphaned = _orphan_check()
    if orphaned():
        stop.set()
    runtime: WorkerRuntime | None = None
    try:
        if not lock.acquire(wait=False):
            log.info("another worker (pid %s) holds %s; waiting for it", lock.holder(), lock.path)
            if not lock.acquire(wait=True, should_stop=lambda: stop.is_set() or orphaned()):
                return
        runtime = WorkerRuntime(settings)
        if stop.is_set() or orphaned():
            return
        recovered = runtime.recover()
        log.info("worker %d started: recovered %s", os.getpid(), recovered)

        _start_watchers(runtime, stop, sweep_seconds, orphaned)
        # Polling: an idle worker checks the queue every 20 ms, backing off to 200 ms; each check is one
        # indexed SELECT on a small SQLite file, and it bounds the queue's added latency.
        consumer = runtime.queue.huey.create_consumer(
            workers=threads or settings.worker_threads,
            worker_type="thread",
            initial_delay=0.02,
            backoff=1.25,
            max_delay=0.2,
            check_worker_health=True,
            health_check_interval=5,
            graceful_signal="INT",
            # A graceful stop waits this long for running tasks, then the worker exits anyway (what was
            # cut short is recovered from the outbox). Without it a task stuck on a receiver would keep
            # a worker orphaned by a crashed server alive, and its lock from the next server's worker.
            shutdown_timeout=settings.shutdown_grace_seconds,
        )
        for sig, handler in previous.items():  # the consumer installs its own (SIGINT graceful)
            signal.signal(sig, handler)
        if not stop.is_set():
            consumer.run()
            if any(thread.is_alive() for _, thread in consumer.worker_threads):
                # The grace period ran out with actions still running. Exit as a crash would: their
                # claims lapse with this process and the next worker recovers them. Closing the
                # databases and clients under them would only turn them into failed attempts.
                log.warning(
                    "worker %d: running actions did not finish in %.0f s; leaving them to recovery",
                    os.getpid(),
                    settings.shutdown_grace_seconds,
                )
                logging.shutdown()
                os._exit(0)
    finally:
        stop.set()
        if runtime is not None:
            runtime.close()
        lock.release()

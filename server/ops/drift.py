"""Drift: whether what each task is given, and what it gives back, still looks like it did at first.

Inputs. Lineage keeps an input's digest, not its text (`retain_inputs` is off by default), so inputs are
embedded as they come: `RunExecutor` hands each request's task and input to `observe()`, which only puts the
text on a bounded queue (a full queue drops the input and counts it: the request never waits for drift). A
background thread embeds the queue in small batches, on one core, with the document index's embedder
(MiniLM in production) and keeps the vectors, never the text, in `drift_samples` (drift_tables.py). It
waits for the index to load the model rather than loading it itself: the server starts MiniLM once the
language model is ready, and a second load at start would slow both. Two signals per task (drift_signals.py):
`input_psi`, the PSI of each sample's similarity to the reference centroid, and `input_centroid`, the
cosine distance between the windows' centroids.

Outputs, read from lineage's runs and review queue over the same windows (a task's first
`drift_reference_size` finished runs, and its last `drift_window_size`): `label_psi` (triage's label
shares), `confidence_mean`, `review_rate` (structured tasks) and `null_rate:<field>` (extraction, at most
`MAX_FIELDS` fields a task). These are signed changes, current minus reference; they alarm when the change
is at least `drift_rate_threshold` either way.

The reference is the first window a task filled, so a change that is here to stay alarms until an admin
accepts it as the new normal: `rebaseline` (`deskpilot drift rebaseline`, `POST /v1/drift/rebaseline`)
restarts the task's reference from that moment (`drift_baselines`), deletes its input samples and its alarm
state, and chains one `drift.rebaselined` event naming the signals that were in alarm, rather than a
`drift.cleared` per signal: nothing came back, the normal moved. Until both windows fill again the task has
no signals, and `GET /v1/drift` lists it as waiting. A window is compared only once it is full, so the first
check of a task comes after `reference + window` runs.

When: after every `drift_check_every` new input samples of a task (on the background thread), and on
`GET /v1/drift`; never on a request's path. A check whose windows have not moved since the last one writes
nothing. Each check appends its values to `drift_checks` (a time series) and updates `drift_state`. A signal
crossing its threshold, or coming back under it, is recorded once per crossing, not once per check: a
chained `drift.alarm` or `drift.cleared` event in lineage (in the same transaction as the state), a log
line, and the `deskpilot_drift_alarm` gauge (collectors.py) from the state. Coming back means falling under
`drift_clear_ratio` x the threshold, not just under it: measured on finite windows a value hovers, and a
value hovering at the threshold would otherwise alarm and clear on every check, each a chained event.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from statistics import fmean
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from deskpilot.server.core.db import iso_utc, rows_as_dicts
from deskpilot.server.lineage import LineageStore
from deskpilot.server.ops.drift_signals import centroid_distance, projection, psi, share_psi
from deskpilot.server.ops.drift_tables import (
    DRIFT_TABLES,
    OutputRow,
    OutputWindows,
    SampleWindows,
    add_samples,
    baseline_of,
    known_tasks,
    output_windows,
    restart_reference,
    sample_windows,
    waiting,
)
from deskpilot.server.ops.drift_wire import (
    DriftReport,
    DriftSignalOut,
    DriftWaitingOut,
    Rebaselined,
    RebaselineIn,
    Signal,
    UnknownDriftTask,
)
from deskpilot.server.settings import Settings

if TYPE_CHECKING:
    from deskpilot.indexes import Embedder

__all__ = [
    "DriftMonitor",
    "DriftReport",
    "DriftSignalOut",
    "DriftWaitingOut",
    "RebaselineIn",
    "Rebaselined",
    "Signal",
    "UnknownDriftTask",
    "input_text",
]

log = logging.getLogger("deskpilot.drift")

ACTOR = "drift monitor"
TRIAGE_TASK = "classify"
EXTRACTION_PREFIX = "extract:"
# Fields of an extraction task whose null rate is watched (the first, by name): bounded metric labels.
MAX_FIELDS = 20
# Inputs waiting to be embedded; beyond this they are dropped (and counted), never waited for.
QUEUE_SIZE = 1000
# Up to 4 texts a call: MiniLM then runs on one core (SentenceTransformerEmbedder's query threads), leaving
# the others to the language model; a larger batch would take every core for drift, a background task.
BATCH = 4
# MiniLM reads the first 256 tokens (about 1,000 characters); the rest would be tokenized for nothing.
MAX_CHARS = 2000
_POLL = 0.2


def input_text(value: Mapping[str, Any]) -> str | None:
    """The text of a run's input that drift embeds: a document's or selection's text, an email's subject and
    body, or a question; None when there is none."""
    text = value.get("text")
    if isinstance(text, str) and text.strip():
        return text[:MAX_CHARS]
    email = value.get("email")
    if isinstance(email, Mapping):
        joined = f"{email.get('subject') or ''}\n{email.get('body') or ''}".strip()
        return joined[:MAX_CHARS] or None
    question = value.get("question")
    if isinstance(question, str) and question.strip():
        return question[:MAX_CHARS]
    return None


class _Input(NamedTuple):
    task: str
    text: str
    at: str


# Put on the queue by `close()` so that the thread sees the stop at once, not after its next poll.
_WAKE = _Input("", "", "")


class DriftMonitor:
    """Drift per task, for one lineage file. `observe` is the request path's hook; `start` begins embedding
    on a background thread; `check` and `report` are what `GET /v1/drift` calls (blocking: the database)."""

    def __init__(self, lineage: LineageStore, settings: Settings) -> None:
        lineage.migrate(DRIFT_TABLES)
        self._lineage, self.settings = lineage, settings
        self._queue: queue.Queue[_Input] = queue.Queue(QUEUE_SIZE)
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._checked: dict[str, tuple[int, int]] = {}  # task: (last sample id, last run seq) checked
        self._new: dict[str, int] = {}  # task: samples stored since its last check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the request path -------------------------------------------------------------------------------

    def observe(self, task: str, value: Mapping[str, Any]) -> None:
        """Queue a run's input to be embedded; never blocks (a full queue drops it and counts it)."""
        text = input_text(value)
        if text is None:
            return
        try:
            self._queue.put_nowait(_Input(task, text, iso_utc(self._lineage.now())))
        except queue.Full:
            with self._dropped_lock:
                self._dropped += 1

    @property
    def pending(self) -> int:
        """Inputs queued or being embedded."""
        return self._queue.unfinished_tasks

    @property
    def dropped(self) -> int:
        return self._dropped

    # -- the background thread --------------------------------------------------------------------------

    def start(self, embedder: Embedder) -> None:
        """Embed queued inputs with `embedder` on a background thread (once; later calls do nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(embedder,), name="drift", daemon=True)
            self._thread.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued input is stored (and the checks it called for have run); False if that
        took longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0 or not self._queue.all_tasks_done.wait(left):
                    return False
        return True

    def close(self) -> None:
        """Stop the thread; what is still queued is not embedded."""
        self._stop.set()
        if self._thread is not None:
            with contextlib.suppress(queue.Full):  # wake it now; a full queue means it is busy anyway
                self._queue.put_nowait(_WAKE)
            self._thread.join(timeout=10)

    def _run(self, embedder: Embedder) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._queue.get(timeout=_POLL)]
            except queue.Empty:
                continue
            if batch[0] is _WAKE:
                self._queue.task_done()
                continue
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                if self._ready(embedder):
                    self._store(embedder, batch)
            except Exception:  # the thread must outlive a bad batch: log it and go on with the next
                log.exception("drift: %d input(s) could not be embedded and stored", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _ready(self, embedder: Embedder) -> bool:
        """Wait for the index to have loaded the model; False if the monitor stops first."""
        while not embedder.is_ready:
            if self._stop.wait(_POLL):
                return False
        return True

    def _store(self, embedder: Embedder, batch: list[_Input]) -> None:
        vectors = embedder.embed([item.text for item in batch])
        rows = [
            (item.task, item.at, embedder.model_id, vector.astype("float32").tobytes())
            for item, vector in zip(batch, vectors, strict=True)
        ]
        with self._lineage.transaction() as conn:
            add_samples(
                conn,
                rows,
                reference=self.settings.drift_reference_size,
                window=self.settings.drift_window_size,
            )
        due = []
        for item in batch:
            self._new[item.task] = self._new.get(item.task, 0) + 1
            if self._new[item.task] >= self.settings.drift_check_every:
                self._new[item.task] = 0
                due.append(item.task)
        if due:
            self.check(tasks=due)

    # -- checks -----------------------------------------------------------------------------------------

    def check(self, tasks: list[str] | None = None) -> list[Signal]:
        """Check `tasks` (default: every task with samples or runs) and record what changed; the signals
        of the tasks whose windows moved since their last check."""
        with self._check_lock:
            if tasks is None:
                tasks = self._tasks()
            measured: list[Signal] = []
            for task in tasks:
                measured.extend(self._check_task(task))
            return measured

    def report(self, *, check: bool = True) -> DriftReport:
        """The latest signals of every task (after a check, unless `check` is false or drift is off)."""
        s = self.settings
        if check and s.drift_enabled:
            self.check()
        with self._lineage.reading() as conn:
            rows = list(rows_as_dicts(conn.execute("SELECT * FROM drift_state ORDER BY task, signal")))
            gathering = [DriftWaitingOut(**row._asdict()) for row in waiting(conn)]
        signals = [
            DriftSignalOut(**{k: v for k, v in row.items() if k != "alarm"}, alarm=bool(row["alarm"]))
            for row in rows
        ]
        return DriftReport(
            enabled=s.drift_enabled,
            reference_size=s.drift_reference_size,
            window_size=s.drift_window_size,
            check_every=s.drift_check_every,
            psi_threshold=s.drift_psi_threshold,
            centroid_threshold=s.drift_centroid_threshold,
            rate_threshold=s.drift_rate_threshold,
            clear_ratio=s.drift_clear_ratio,
            pending=self.pending,
            dropped=self.dropped,
            signals=signals,
            alarms=[signal for signal in signals if signal.alarm],
            waiting=gathering,
        )

    def rebaseline(self, task: str, *, actor: str) -> Rebaselined:
        """Accept the task's current state as the new normal: its reference restarts now (the next
        reference-size inputs and finished runs), its samples and alarm state go, and one chained
        `drift.rebaselined` event says so. Raises UnknownDriftTask for a task drift does not know."""
        with self._check_lock:
            since = iso_utc(self._lineage.now())
            with self._lineage.transaction() as conn:
                known = known_tasks(conn)
                if task not in known:
                    raise UnknownDriftTask(
                        f"drift knows no task {task!r} (no input samples, no finished runs);"
                        f" it knows: {', '.join(known[:20]) or 'none yet'}"
                    )
                in_alarm, deleted = restart_reference(conn, task, at=since, actor=actor)
                details = {"task": task, "signals_in_alarm": in_alarm}
                event = self._lineage.append_event(conn, "drift.rebaselined", details, actor=actor)
            self._checked.pop(task, None)
            self._new.pop(task, None)
        log.info(
            "drift rebaselined: task %s by %s, was in alarm: %s", task, actor, ", ".join(in_alarm) or "none"
        )
        return Rebaselined(
            task=task,
            since=since,
            actor=actor,
            signals_in_alarm=in_alarm,
            samples_deleted=deleted,
            event=str(event["id"]),
        )

    def rebaseline_all(self, *, actor: str) -> list[Rebaselined]:
        """`rebaseline` every task drift knows, one event each."""
        return [self.rebaseline(task, actor=actor) for task in self._tasks()]

    def _tasks(self) -> list[str]:
        with self._lineage.reading() as conn:
            return known_tasks(conn)

    def _check_task(self, task: str) -> list[Signal]:
        s = self.settings
        sizes = {"reference": s.drift_reference_size, "window": s.drift_window_size}
        with self._lineage.reading() as conn:
            baseline = baseline_of(conn, task)
            samples = sample_windows(conn, task, **sizes)
            outputs = output_windows(conn, task, **sizes)
        moved = (samples.last_id if samples else 0, outputs.last_seq if outputs else 0)
        if moved == (0, 0) or self._checked.get(task) == moved:
            return []
        signals = [
            *(self._input_signals(task, samples) if samples else []),
            *(self._output_signals(task, outputs) if outputs else []),
        ]
        recorded = self._record(task, signals, baseline)
        self._checked[task] = moved
        return recorded

    def _input_signals(self, task: str, windows: SampleWindows) -> list[Signal]:
        s = self.settings
        ref_sim, cur_sim = projection(windows.reference, windows.current)
        n = {"reference_n": len(windows.reference), "current_n": len(windows.current), "window": windows.span}
        return [
            _at_least(task, "input_psi", psi(ref_sim, cur_sim), s.drift_psi_threshold, n),
            _at_least(
                task,
                "input_centroid",
                centroid_distance(windows.reference, windows.current),
                s.drift_centroid_threshold,
                n,
            ),
        ]

    def _output_signals(self, task: str, windows: OutputWindows) -> list[Signal]:
        rate = _RateSignals(task, windows, self.settings.drift_rate_threshold)
        rate.add("confidence_mean", lambda row: row.confidence)
        if task == TRIAGE_TASK or task.startswith(EXTRACTION_PREFIX):
            rate.add("review_rate", lambda row: float(row.reviewed))
        if task.startswith(EXTRACTION_PREFIX):
            for field in _fields(windows.reference):
                rate.add(f"null_rate:{field}", _is_null(field))
        if task == TRIAGE_TASK:
            ref, cur = _labels(windows.reference), _labels(windows.current)
            if ref and cur:
                n = {"reference_n": len(ref), "current_n": len(cur), "window": windows.span}
                threshold = self.settings.drift_psi_threshold
                rate.signals.append(_at_least(task, "label_psi", share_psi(ref, cur), threshold, n))
        return rate.signals

    def _record(self, task: str, signals: list[Signal], baseline: tuple[str, int] | None) -> list[Signal]:
        """Append the signals to the time series, update the state, and chain an event per crossing; the
        signals as recorded (an alarm held until the value falls under the clear level). Nothing is
        recorded if the task's reference was restarted (by another process) since its windows were read."""
        if not signals:
            return []
        at = iso_utc(self._lineage.now())
        recorded: list[Signal] = []
        crossed: list[Signal] = []
        with self._lineage.transaction() as conn:
            if baseline_of(conn, task) != baseline:
                log.info(
                    "drift: task %s was rebaselined during its check; its signals are not recorded", task
                )
                return []
            for measured in signals:
                before = conn.execute(
                    "SELECT alarm, since FROM drift_state WHERE task = ? AND signal = ?",
                    [measured.task, measured.signal],
                ).fetchone()
                was_alarm, since = (bool(before[0]), before[1]) if before else (False, None)
                signal = self._held(measured, was_alarm)
                if signal.alarm != was_alarm:
                    crossed.append(signal)
                    since = at if signal.alarm else None
                    self._lineage.append_event(conn, _event_kind(signal), _details(signal), actor=ACTOR)
                _store_signal(conn, signal, at, since)
                recorded.append(signal)
        for signal in crossed:
            _log_crossing(signal)
        return recorded

    def _held(self, signal: Signal, was_alarm: bool) -> Signal:
        """The signal with its alarm held while it was in alarm and its value is not yet under
        `drift_clear_ratio` x the threshold (a rate's change counts either way)."""
        clear_level = self.settings.drift_clear_ratio * signal.threshold
        if was_alarm and not signal.alarm and abs(signal.value) >= clear_level:
            return msgspec.structs.replace(signal, alarm=True)
        return signal


class _RateSignals:
    """Signals that compare a mean (a rate is the mean of 0 and 1) between the windows, current minus
    reference, ignoring runs without a value."""

    def __init__(self, task: str, windows: OutputWindows, threshold: float) -> None:
        self.task, self.windows, self.threshold = task, windows, threshold
        self.signals: list[Signal] = []

    def add(self, name: str, value_of: Callable[[OutputRow], float | None]) -> None:
        ref = [v for row in self.windows.reference if (v := value_of(row)) is not None]
        cur = [v for row in self.windows.current if (v := value_of(row)) is not None]
        if not ref or not cur:
            return
        change = fmean(cur) - fmean(ref)
        self.signals.append(
            Signal(
                task=self.task,
                signal=name,
                value=change,
                threshold=self.threshold,
                alarm=abs(change) >= self.threshold,
                reference_n=len(ref),
                current_n=len(cur),
                window=self.windows.span,
            )
        )


def _at_least(task: str, name: str, value: float, threshold: float, n: dict[str, Any]) -> Signal:
    return Signal(task=task, signal=name, value=value, threshold=threshold, alarm=value >= threshold, **n)


def _fields(rows: list[OutputRow]) -> list[str]:
    """The extraction fields the reference window's results have, the first `MAX_FIELDS` by name."""
    names = {key for row in rows if isinstance(row.data, dict) for key in row.data}
    return sorted(names)[:MAX_FIELDS]


def _is_null(field: str) -> Callable[[OutputRow], float | None]:
    def value_of(row: OutputRow) -> float | None:
        return float(row.data.get(field) is None) if isinstance(row.data, dict) else None

    return value_of


def _labels(rows: list[OutputRow]) -> list[str]:
    return [str(row.data["label"]) for row in rows if isinstance(row.data, dict) and "label" in row.data]


def _event_kind(signal: Signal) -> str:
    return "drift.alarm" if signal.alarm else "drift.cleared"


def _details(signal: Signal) -> dict[str, Any]:
    return {
        "task": signal.task,
        "signal": signal.signal,
        "value": signal.value,
        "threshold": signal.threshold,
        "reference_n": signal.reference_n,
        "current_n": signal.current_n,
        "window": signal.window,
    }


def _store_signal(conn: sqlite3.Connection, signal: Signal, at: str, since: str | None) -> None:
    values = [signal.task, signal.signal, signal.value, signal.threshold, int(signal.alarm)]
    counts = [signal.reference_n, signal.current_n]
    conn.execute(
        "INSERT INTO drift_checks (at, task, signal, value, threshold, alarm, reference_n, current_n)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [at, *values, *counts],
    )
    conn.execute(
        "INSERT OR REPLACE INTO drift_state"
        " (task, signal, value, threshold, alarm, since, at, reference_n, current_n)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [*values, since, at, *counts],
    )


def _log_crossing(signal: Signal) -> None:
    what = (signal.task, signal.signal, signal.value, signal.threshold, signal.reference_n, signal.current_n)
    if signal.alarm:
        log.warning(
            "drift alarm: task %s, %s = %.3f crossed its threshold %.3f (reference %d, current %d)", *what
        )
    else:
        log.info(
            "drift cleared: task %s, %s = %.3f is back under its threshold %.3f (reference %d, current %d)",
            *what,
        )

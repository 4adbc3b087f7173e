"""The lineage store on real SQLite files: the run lifecycle, crash recovery, tamper detection, export."""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import itertools
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from deskpilot.server.lineage import (
    DuplicateRunError,
    LineageError,
    LineageStore,
    Run,
    RunEnd,
    RunStart,
    UnknownRunError,
)
from deskpilot.server.lineage._chain import chain_hash
from deskpilot.server.lineage._migrations import migrations

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_start(**overrides: Any) -> RunStart:
    fields: dict[str, Any] = {
        "task": "summarize",
        "template_id": "summarize_email",
        "template_hash": "sha256:" + "a" * 64,
        "model_id": "smollm2-135m-instruct",
        "weights_digest": "sha256:" + "b" * 64,
        "backend": "fake",
        "parameters": {"max_tokens": 64, "temperature": 0.2, "seed": 7},
        "input_digest": "sha256:" + "c" * 64,
        "client": "outlook",
        "source_ref": "AAMkAGI2TG93AAA=",
    }
    return RunStart(**(fields | overrides))


def make_end(**overrides: Any) -> RunEnd:
    fields: dict[str, Any] = {
        "status": "ok",
        "output": "The meeting moved to Thursday.",
        "ttft_ms": 41.5,
        "total_ms": 812.25,
        "tokens_in": 120,
        "tokens_out": 9,
        "cost": 0.0,
    }
    return RunEnd(**(fields | overrides))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "deskpilot.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[LineageStore]:
    with LineageStore(db_path, clock=clock) as store:
        yield store


def add_runs(store: LineageStore, count: int) -> list[Run]:
    return [store.close_run(store.open_run(make_start()), make_end()) for _ in range(count)]


def tamper(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """What someone with the file and any SQLite tool can do: drop the guard triggers, then write."""
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("DROP TRIGGER IF EXISTS runs_append_only_update")
        conn.execute("DROP TRIGGER IF EXISTS runs_append_only_delete")
        conn.execute(sql, params)


# -- the run lifecycle ----------------------------------------------------------------------------


def test_open_close_get(store: LineageStore, clock: FakeClock) -> None:
    start = make_start(input={"subject": "Moved", "body": "Thursday instead"})
    run_id = store.open_run(start)
    clock.now = T0 + timedelta(seconds=2)
    run = store.close_run(run_id, make_end(validation={"schema": "ok"}, confidence=1))

    assert run.id == run_id
    assert (run.started_at, run.finished_at) == ("2025-03-01T09:00:00.000000Z", "2025-03-01T09:00:02.000000Z")
    assert (run.task, run.template_id, run.model_id, run.client) == (
        "summarize",
        "summarize_email",
        "smollm2-135m-instruct",
        "outlook",
    )
    assert run.parameters == {"max_tokens": 64, "temperature": 0.2, "seed": 7}
    assert run.input == {"subject": "Moved", "body": "Thursday instead"}
    assert (run.status, run.output, run.validation) == (
        "ok",
        "The meeting moved to Thursday.",
        {"schema": "ok"},
    )
    assert run.confidence == 1.0 and isinstance(run.confidence, float)
    assert (run.seq, run.prev_hash) == (1, None)
    assert run.hash is not None and run.hash.startswith("sha256:")
    assert store.get_run(run_id) == run


def test_a_running_run_is_visible_but_not_yet_in_the_chain(store: LineageStore) -> None:
    run_id = store.open_run(make_start(), run_id="run-1")

    running = store.get_run(run_id)
    assert running is not None
    assert (running.id, running.status, running.task) == ("run-1", "running", "summarize")
    assert (running.finished_at, running.seq, running.prev_hash, running.hash) == (None, None, None, None)
    assert list(store.iter_runs()) == []
    assert store.get_run("no-such-run") is None


def test_retrieval_run_keeps_its_chunks_and_parent(store: LineageStore) -> None:
    parent = add_runs(store, 1)[0]
    chunks = [{"id": "doc-1#4", "score": 0.83}, {"id": "mail-9#0", "score": 0.71}]
    run_id = store.open_run(make_start(task="ask", retrieved_chunks=chunks, parent_id=parent.id))
    run = store.close_run(run_id, make_end(output={"answer": "Thursday", "citations": ["doc-1#4"]}))
    assert (run.retrieved_chunks, run.parent_id) == (chunks, parent.id)
    assert run.output == {"answer": "Thursday", "citations": ["doc-1#4"]}


def test_a_run_closes_once(store: LineageStore) -> None:
    run_id = store.open_run(make_start())
    store.close_run(run_id, make_end())
    with pytest.raises(UnknownRunError, match="already closed"):
        store.close_run(run_id, make_end())
    with pytest.raises(UnknownRunError, match="not known"):
        store.close_run("never-opened", make_end())
    with pytest.raises(DuplicateRunError):
        store.open_run(make_start(), run_id=run_id)


def test_bad_records_are_refused_before_anything_is_written(store: LineageStore) -> None:
    run_id = store.open_run(make_start())
    with pytest.raises(ValueError, match="status must be one of"):
        store.close_run(run_id, make_end(status="running"))
    with pytest.raises(ValueError, match="tokens_in"):
        store.close_run(run_id, make_end(tokens_in="120"))
    with pytest.raises(ValueError, match="RunStart"):
        store.open_run(make_start(input=object()))
    assert store.get_run(run_id).status == "running"  # type: ignore[union-attr]
    assert store.verify().checked == 0


def test_the_store_refuses_work_after_close(db_path: Path) -> None:
    store = LineageStore(db_path)
    store.close()
    store.close()  # idempotent
    with pytest.raises(LineageError, match="closed"):
        store.open_run(make_start())
    with pytest.raises(LineageError, match="closed"):
        store.verify()


def test_run_carries_every_field_of_start_and_end() -> None:
    names = {field.name for field in msgspec.structs.fields(Run)}
    for part in (RunStart, RunEnd):
        assert {field.name for field in msgspec.structs.fields(part)} <= names


# -- crash recovery -------------------------------------------------------------------------------


def test_recover_interrupted_after_the_store_was_dropped_unclosed(db_path: Path, clock: FakeClock) -> None:
    store = LineageStore(db_path, clock=clock)
    closed = add_runs(store, 1)[0]
    run_id = store.open_run(make_start())
    del store  # no close(): what a killed process leaves behind
    gc.collect()

    clock.now = T0 + timedelta(minutes=5)
    with LineageStore(db_path, clock=clock) as store:
        assert store.get_run(run_id).status == "running"  # type: ignore[union-attr]
        assert store.recover_interrupted() == 1
        assert store.recover_interrupted() == 0
        run = store.get_run(run_id)
        assert run is not None
        assert (run.status, run.seq, run.prev_hash) == ("interrupted", 2, closed.hash)
        assert run.finished_at == "2025-03-01T09:05:00.000000Z"
        assert run.error and "before this run was closed" in run.error
        assert store.verify().ok


def test_recover_interrupted_after_a_real_crash(db_path: Path) -> None:
    crash = textwrap.dedent(
        """
        import os, sys
        from deskpilot.server.lineage import LineageStore, RunStart
        store = LineageStore(sys.argv[1])
        store.open_run(RunStart(task="summarize", template_id="t", template_hash="sha256:t",
                                model_id="m", weights_digest="sha256:w", backend="fake",
                                parameters={}, input_digest="sha256:i"), run_id="crashed")
        os._exit(3)  # no cleanup, no close, no atexit
        """
    )
    done = subprocess.run([sys.executable, "-c", crash, str(db_path)], capture_output=True, timeout=120)
    assert done.returncode == 3, done.stderr.decode()

    with LineageStore(db_path) as store:
        assert store.recover_interrupted() == 1
        assert store.get_run("crashed").status == "interrupted"  # type: ignore[union-attr]
        assert store.verify().ok


# -- the chain and verify() -----------------------------------------------------------------------


def test_verify_passes_on_a_fresh_chain(store: LineageStore) -> None:
    runs = add_runs(store, 5)
    report = store.verify()
    assert report.ok, report.problems
    assert (report.checked, report.head_hash, report.problems) == (5, runs[-1].hash, [])
    assert [run.seq for run in runs] == [1, 2, 3, 4, 5]
    assert [run.prev_hash for run in runs[1:]] == [run.hash for run in runs[:-1]]


def test_verify_passes_on_an_empty_store(store: LineageStore) -> None:
    report = store.verify()
    assert (report.ok, report.checked, report.head_hash) == (True, 0, None)


def test_the_schema_refuses_update_and_delete(store: LineageStore, db_path: Path) -> None:
    add_runs(store, 1)
    with closing(sqlite3.connect(db_path)) as conn:
        for sql in ("UPDATE runs SET status = 'error'", "DELETE FROM runs"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)


def test_verify_names_an_edited_row(store: LineageStore, db_path: Path) -> None:
    runs = add_runs(store, 5)
    tamper(db_path, "UPDATE runs SET output = ? WHERE seq = 3", ('"The meeting is cancelled."',))

    report = store.verify()
    assert not report.ok
    assert report.problems == [
        f"runs seq 3 (run {runs[2].id}): hash mismatch, the row was changed after it was written"
    ]


def test_verify_catches_an_edit_whose_hash_was_recomputed(store: LineageStore, db_path: Path) -> None:
    runs = add_runs(store, 3)
    with closing(sqlite3.connect(db_path)) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM runs WHERE seq = 2").fetchone())
    row["tokens_out"] = 1
    tamper(
        db_path,
        "UPDATE runs SET tokens_out = 1, hash = ? WHERE seq = 2",
        (chain_hash(row["prev_hash"], row, "runs"),),
    )

    report = store.verify()
    assert report.problems == [
        f"runs seq 3 (run {runs[2].id}): broken link, prev_hash is not the hash of seq 2 (run {runs[1].id})"
    ]


def test_verify_names_a_row_deleted_from_the_middle(store: LineageStore, db_path: Path) -> None:
    runs = add_runs(store, 5)
    tamper(db_path, "DELETE FROM runs WHERE seq = 3")

    report = store.verify()
    assert (report.ok, report.checked) == (False, 4)
    assert report.problems == [
        f"runs: seq 3 missing between seq 2 (run {runs[1].id}) and seq 4 (run {runs[3].id}): "
        "rows were deleted"
    ]


def test_verify_notices_the_last_rows_deleted(store: LineageStore, db_path: Path) -> None:
    runs = add_runs(store, 5)
    tamper(db_path, "DELETE FROM runs WHERE seq >= 4")

    report = store.verify()
    assert (report.ok, report.head_hash) == (False, runs[2].hash)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"runs: seq 4-5 missing after seq 3 (run {runs[2].id})")
    assert "sqlite_sequence" in report.problems[0]


def test_verify_notices_every_row_deleted(store: LineageStore, db_path: Path) -> None:
    add_runs(store, 2)
    tamper(db_path, "DELETE FROM runs")
    assert store.verify().problems == [
        "runs: seq 1-2 missing (the table is empty): sqlite_sequence shows seq 2 was written, "
        "so rows were deleted from the end"
    ]


def test_verify_notices_a_broken_genesis(store: LineageStore, db_path: Path) -> None:
    runs = add_runs(store, 3)
    tamper(db_path, "DELETE FROM runs WHERE seq = 1")
    problems = store.verify().problems
    assert problems == [
        f"runs: broken genesis, seq 1 missing before seq 2 (run {runs[1].id}): "
        "rows were deleted from the start of the chain"
    ]


def test_a_deletion_stays_visible_after_more_appends(store: LineageStore, db_path: Path) -> None:
    runs = add_runs(store, 3)
    tamper(db_path, "DELETE FROM runs WHERE seq = 3")
    later = add_runs(store, 1)[0]
    assert (later.seq, later.prev_hash) == (4, runs[1].hash)
    assert store.verify().problems == [
        f"runs: seq 3 missing between seq 2 (run {runs[1].id}) and seq 4 (run {later.id}): rows were deleted"
    ]


def test_an_anchor_catches_a_rewritten_chain(store: LineageStore, db_path: Path) -> None:
    add_runs(store, 3)
    anchor = store.verify().head_hash
    assert anchor is not None and store.verify(anchors=[anchor]).ok
    # Rewrite the whole chain from seq 2 onward with recomputed hashes: the chain alone cannot tell.
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.row_factory = sqlite3.Row
        conn.execute("DROP TRIGGER runs_append_only_update")
        rows = [dict(row) for row in conn.execute("SELECT * FROM runs ORDER BY seq")]
        for previous, row in itertools.pairwise(rows):
            if row["seq"] == 2:
                row["output"] = '"Nothing happened."'
            row["prev_hash"] = previous["hash"]
            row["hash"] = chain_hash(row["prev_hash"], row, "runs")
            conn.execute(
                "UPDATE runs SET output = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (row["output"], row["prev_hash"], row["hash"], row["seq"]),
            )
    assert store.verify().ok
    report = store.verify(anchors=[anchor])
    assert report.problems == [
        f"runs: anchor {anchor} is not in the chain: the rows up to it were rewritten or removed"
    ]


def test_the_hash_formula_is_the_documented_one(store: LineageStore, db_path: Path) -> None:
    # An auditor's re-implementation with nothing but the standard library, as _chain.py describes it.
    runs = add_runs(store, 2)
    with closing(sqlite3.connect(db_path)) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(row) for row in conn.execute("SELECT * FROM runs ORDER BY seq")]
    for row, run in zip(rows, runs, strict=True):
        assert row["hash_v"] == 2  # content (input, output) enters the hash by its digest
        for column in ("input", "output"):
            if row[column] is not None:
                row[column] = "sha256:" + hashlib.sha256(row[column].encode()).hexdigest()
        body = {key: value for key, value in row.items() if value is not None and key != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        prefix = f"deskpilot-lineage-v2\n{row['prev_hash'] or ''}\n"
        assert run.hash == "sha256:" + hashlib.sha256((prefix + canonical).encode()).hexdigest()


def test_concurrent_appends_keep_one_valid_chain(store: LineageStore) -> None:
    writers, per_writer = 4, 25
    failures: list[BaseException] = []
    reports = []
    stop = threading.Event()

    def write() -> None:
        try:
            for _ in range(per_writer):
                run_id = store.open_run(make_start())
                assert store.get_run(run_id).status == "running"  # type: ignore[union-attr]
                store.close_run(run_id, make_end())
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    def verify_while_writing() -> None:
        while not stop.is_set():
            reports.append(store.verify())

    threads = [threading.Thread(target=write) for _ in range(writers)]
    checker = threading.Thread(target=verify_while_writing)
    checker.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    checker.join()

    assert failures == []
    assert all(report.ok for report in reports), [report.problems for report in reports if not report.ok]
    final = store.verify()
    assert (final.ok, final.checked) == (True, writers * per_writer)
    assert [run.seq for run in store.iter_runs()] == list(range(1, writers * per_writer + 1))


# -- the database itself --------------------------------------------------------------------------


def test_wal_is_on(store: LineageStore, db_path: Path) -> None:
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrations_are_idempotent_on_reopen(db_path: Path) -> None:
    with LineageStore(db_path) as store:
        runs = add_runs(store, 2)
    for _ in range(2):
        with LineageStore(db_path) as store:
            assert store.verify().ok
            assert [run.hash for run in store.iter_runs()] == [run.hash for run in runs]
    with closing(sqlite3.connect(db_path)) as conn:
        applied = conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'deskpilot.lineage' ORDER BY id"
        ).fetchall()
    # m005 (actions and workflows) moved to those packages' own sets: tests/test_migrations.py
    names = [
        "m001_runs",
        "m002_open_runs",
        "m003_reviews",
        "m004_review_queue",
        "m006_reviewer_address",
        "m007_model_profiles",
        "m008_trace_id",
        "m009_review_source_text",
        "m010_audit_events",
        "m011_content_hashes",
    ]
    assert [name for (name,) in applied] == names
    assert repr(migrations) == f"<Migrations 'deskpilot.lineage': [{', '.join(names)}]>"


def test_json_columns_read_as_json_in_plain_sqlite(store: LineageStore, db_path: Path) -> None:
    run_id = store.open_run(make_start())
    store.close_run(run_id, make_end(output={"title": "Moved", "when": "Thursday"}))
    with closing(sqlite3.connect(db_path)) as conn:
        row = conn.execute(
            "SELECT parameters ->> '$.max_tokens', output ->> '$.when', retrieved_chunks FROM runs"
        ).fetchone()
    assert row == (64, "Thursday", "[]")


# -- export ---------------------------------------------------------------------------------------


def test_export_jsonl_round_trips(store: LineageStore) -> None:
    runs = add_runs(store, 3)
    out = io.StringIO()
    assert store.export(out, "jsonl") == 3
    lines = out.getvalue().splitlines()
    assert [msgspec.json.decode(line, type=Run) for line in lines] == runs


def test_export_csv_round_trips(store: LineageStore) -> None:
    chunks = [{"id": "d#1", "score": 0.5}]
    run_id = store.open_run(make_start(input='Hi,\n"quoted" and ünïcode', retrieved_chunks=chunks))
    run = store.close_run(run_id, make_end(output={"answer": "yes"}, error=None))
    out = io.StringIO()
    assert store.export(out, "csv") == 1

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == [field.name for field in msgspec.structs.fields(Run)]
    row = rows[0]
    assert (row["id"], row["hash"], row["seq"], row["status"]) == (run.id, run.hash, "1", "ok")
    assert json.loads(row["input"]) == run.input
    assert json.loads(row["output"]) == {"answer": "yes"}
    assert json.loads(row["parameters"]) == run.parameters
    assert json.loads(row["retrieved_chunks"]) == run.retrieved_chunks
    assert (row["validation"], row["error"], row["prev_hash"]) == ("", "", "")
    assert float(row["total_ms"]) == run.total_ms


def test_export_since_filters_on_started_at(store: LineageStore, clock: FakeClock) -> None:
    ids = []
    for day in range(3):
        clock.now = T0 + timedelta(days=day)
        ids.append(store.open_run(make_start()))
    for run_id in reversed(ids):  # closing order differs from starting order on purpose
        store.close_run(run_id, make_end())

    def exported(since: datetime) -> list[str]:
        out = io.StringIO()
        store.export(out, "jsonl", since=since)
        return [msgspec.json.decode(line, type=Run).id for line in out.getvalue().splitlines()]

    assert exported(T0 + timedelta(days=1)) == [ids[2], ids[1]]  # chain order
    assert exported(datetime(2025, 3, 2, 9, 0)) == [ids[2], ids[1]]  # naive is UTC
    assert exported(datetime(2025, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=1)))) == [ids[2], ids[1]]
    assert exported(T0 + timedelta(days=1, microseconds=1)) == [ids[2]]
    assert [run.id for run in store.iter_runs(since=T0 + timedelta(days=3))] == []


def test_export_rejects_an_unknown_format(store: LineageStore) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        store.export(io.StringIO(), "xml")  # type: ignore[arg-type]


def test_governance_events_are_chained_and_verified(store: LineageStore, db_path: Path) -> None:
    alarm = store.record_event("drift.alarm", {"task": "summarize", "psi": 0.41}, actor="drift monitor")
    report = store.verify()
    assert report.ok and report.events_checked == 1 and report.events_head_hash == alarm["hash"]
    recorded = store.record_verification(report, actor="test")
    assert recorded["details"]["ok"] is True and recorded["prev_hash"] == alarm["hash"]
    assert [e["kind"] for e in store.events()] == ["audit.verify", "drift.alarm"]
    assert [e["kind"] for e in store.events(kinds=["drift.alarm"])] == ["drift.alarm"]
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute("DROP TRIGGER audit_events_append_only_update")
        conn.execute('UPDATE audit_events SET details = \'{"task":"triage"}\' WHERE seq = 1')
        conn.commit()
    problems = store.verify().problems
    assert any("audit_events seq 1" in p and "hash mismatch" in p for p in problems), problems

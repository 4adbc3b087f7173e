"""Purging content from the chain: the text goes, the chain still verifies, and the purge is on record.

Rows written since content hashes (hash_v 2) are hashed over their content's digest, so a purge keeps
them verifiable; older rows (v1) are accounted for by the hash and rest-of-row digest their purge entry
recorded. Everything runs on real SQLite files, tampering included.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from test_lineage import add_runs, make_end, make_start

from deskpilot.server.lineage import LineageStore, Run
from deskpilot.server.lineage._chain import HASH_PREFIX, canonical_json, tombstone

pytestmark = pytest.mark.unit


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "deskpilot.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[LineageStore]:
    with LineageStore(db_path) as store:
        yield store


def purge(store: LineageStore, runs: list[Run], columns: tuple[str, ...] | None = None) -> dict[str, Any]:
    with store.transaction() as conn:
        done = store.purge(conn, "runs", [run.seq or 0 for run in runs], columns)
        store.append_event(conn, "retention.purge", {"purged": {"runs": done}}, actor="test")
    return done


def rewrite_as_v1(db_path: Path, seq: int) -> None:
    """Make the newest row look as a database from before content hashes wrote it (hash_v NULL, v1 hash).
    Drops the UPDATE guard, as a tamperer would."""
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.row_factory = sqlite3.Row
        conn.execute("DROP TRIGGER runs_append_only_update")
        row = dict(conn.execute("SELECT * FROM runs WHERE seq = ?", [seq]).fetchone())
        row["hash_v"] = None
        digest = hashlib.sha256(f"{HASH_PREFIX}\n{row['prev_hash'] or ''}\n".encode() + canonical_json(row))
        conn.execute(
            "UPDATE runs SET hash_v = NULL, hash = ? WHERE seq = ?", ["sha256:" + digest.hexdigest(), seq]
        )


def test_a_purged_run_loses_its_text_and_still_verifies(store: LineageStore) -> None:
    runs = [
        store.close_run(store.open_run(make_start(input={"body": "Call Ann"})), make_end()) for _ in range(3)
    ]
    done = purge(store, runs[1:2])
    assert done == {"columns": ["input", "output"], "v2": [runs[1].seq], "v1": []}
    purged = store.get_run(runs[1].id)
    assert purged is not None and purged.input is None and purged.output is None
    assert purged.purged == ["input", "output"] and purged.hash == runs[1].hash
    untouched = store.get_run(runs[2].id)
    assert untouched is not None and untouched.output == "The meeting moved to Thursday."
    report = store.verify()
    assert report.ok, report.problems
    assert purge(store, runs[1:2]) == {"columns": ["input", "output"], "v2": [], "v1": []}  # idempotent


def test_a_purge_of_one_column_keeps_the_other(store: LineageStore) -> None:
    runs = [store.close_run(store.open_run(make_start(input="Dear Ann")), make_end())]
    purge(store, runs, ("input",))
    run = store.get_run(runs[0].id)
    assert run is not None and run.input is None and run.output == "The meeting moved to Thursday."
    assert store.verify().ok


def test_a_tombstone_without_a_purge_entry_is_reported(store: LineageStore, db_path: Path) -> None:
    runs = add_runs(store, 2)
    # The guard lets a tombstone through (that is how a purge writes), but only the chained entry makes
    # it legitimate.
    with closing(sqlite3.connect(db_path)) as conn, conn:
        (text,) = conn.execute("SELECT output FROM runs WHERE seq = 2").fetchone()
        conn.execute("UPDATE runs SET output = ? WHERE seq = 2", [tombstone(text)])
    assert store.verify().problems == [
        f"runs seq 2 (run {runs[1].id}): output purged without a chained purge entry"
    ]


def test_the_guard_allows_nothing_but_a_tombstone(store: LineageStore, db_path: Path) -> None:
    add_runs(store, 1)
    with closing(sqlite3.connect(db_path)) as conn:
        for sql in (
            "UPDATE runs SET output = '\"something else\"' WHERE seq = 1",
            "UPDATE runs SET model_id = 'other' WHERE seq = 1",
            "UPDATE runs SET output = 'purged sha256:00', model_id = 'other' WHERE seq = 1",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)


def test_a_tombstone_with_another_digest_is_a_hash_mismatch(store: LineageStore, db_path: Path) -> None:
    runs = add_runs(store, 1)
    purge(store, runs)
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE runs SET output = 'purged sha256:' || hex(randomblob(32)) WHERE seq = 1")
    assert store.verify().problems == [
        f"runs seq 1 (run {runs[0].id}): hash mismatch, the row was changed after it was written"
    ]


def test_an_old_v1_row_is_purged_on_the_record_of_its_purge_entry(store: LineageStore, db_path: Path) -> None:
    runs = add_runs(store, 2)
    rewrite_as_v1(db_path, 2)
    assert store.verify().ok  # a v1 row verifies as before
    done = purge(store, runs[1:])
    assert done["v2"] == [] and [entry["seq"] for entry in done["v1"]] == [2]
    report = store.verify()
    assert report.ok, report.problems
    # The rest of a purged v1 row is still covered, by the digest its purge entry recorded.
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE runs SET model_id = 'another-model' WHERE seq = 2")  # trigger dropped above
    assert store.verify().problems == [
        f"runs seq 2 (run {runs[1].id}): does not match what its purge entry recorded: "
        "changed after the purge"
    ]


def test_reviews_content_is_purgeable_too(store: LineageStore) -> None:
    run = store.close_run(store.open_run(make_start(task="extract")), make_end(output={"vendor": "ACME"}))
    with store.transaction() as conn:
        review = store.append_chained(
            conn,
            "reviews",
            {
                "id": "r1",
                "review_id": "q1",
                "run_id": run.id,
                "decided_at": "2025-03-01T09:00:00.000000Z",
                "reviewer": "Ann",
                "decision": "edit",
                "changes": '[{"path":"vendor","before":"ACME","after":"ACME Ltd"}]',
                "final": '{"vendor":"ACME Ltd"}',
                "task": "extract",
                "template_id": "t",
                "model_id": "m",
            },
        )
    assert review["hash_v"] == 2
    with store.transaction() as conn:
        done = store.purge(conn, "reviews", [review["seq"]])
        store.append_event(conn, "retention.purge", {"purged": {"reviews": done}})
    assert done["v2"] == [review["seq"]]
    with store.reading() as conn:
        (changes,) = conn.execute("SELECT changes FROM reviews").fetchone()
    assert changes.startswith("purged sha256:")
    assert store.verify().ok

"""`deskpilot audit export|verify`, run through click's CliRunner against a real database in tmp_path."""

from __future__ import annotations

import csv
import io
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from deskpilot.server.lineage import LineageStore, Run, RunEnd, RunStart
from deskpilot.server.lineage.cli import audit

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DESKPILOT_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def runs(home: Path) -> list[Run]:
    """Three closed runs, started a day apart, in the database the settings point at."""
    moment = T0
    with LineageStore(home / "deskpilot.db", clock=lambda: moment) as store:
        closed = []
        for day in range(3):
            moment = T0 + timedelta(days=day)
            run_id = store.open_run(
                RunStart(
                    task="summarize",
                    template_id="summarize_email",
                    template_hash="sha256:t",
                    model_id="smollm2",
                    weights_digest="sha256:w",
                    backend="fake",
                    parameters={"max_tokens": 32},
                    input_digest=f"sha256:{day}",
                )
            )
            closed.append(store.close_run(run_id, RunEnd(status="ok", output={"day": day})))
    return closed


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(audit, list(args), catch_exceptions=False)


def test_export_jsonl_to_stdout(runs: list[Run]) -> None:
    result = invoke("export", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert [msgspec.json.decode(line, type=Run) for line in result.stdout.splitlines()] == runs
    assert "exported 3 runs" in result.stderr


def test_export_csv_to_a_file_since_a_date(runs: list[Run], home: Path) -> None:
    target = home / "out.csv"
    result = invoke("export", "--format", "csv", "--since", "2025-03-02", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [row["id"] for row in rows] == [runs[1].id, runs[2].id]
    assert [row["output"] for row in rows] == ['{"day":1}', '{"day":2}']


def test_export_since_a_datetime_with_an_offset(runs: list[Run]) -> None:
    result = invoke("export", "--since", "2025-03-03T10:00:00+01:00")
    assert [msgspec.json.decode(line, type=Run).id for line in result.stdout.splitlines()] == [runs[2].id]


def test_a_bad_since_is_a_clear_usage_error(runs: list[Run]) -> None:
    result = invoke("export", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "Invalid value for '--since'" in result.stderr
    assert "'last tuesday' is not an ISO 8601 date or date-time" in result.stderr


def test_verify_ok_prints_the_head_hash(runs: list[Run]) -> None:
    result = invoke("verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "OK: 3 runs checked, the chain is intact",
        f"head hash: {runs[-1].hash}",
    ]


def test_verify_fails_with_the_problems_when_tampered(runs: list[Run], home: Path) -> None:
    with closing(sqlite3.connect(home / "deskpilot.db")) as conn, conn:
        conn.execute("DROP TRIGGER runs_append_only_update")
        conn.execute("UPDATE runs SET output = '{\"day\":9}' WHERE seq = 2")
    result = invoke("verify")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "TAMPERED: 3 runs checked, 1 problem(s):"
    assert (
        lines[1]
        == f"  - runs seq 2 (run {runs[1].id}): hash mismatch, the row was changed after it was written"
    )
    assert lines[2] == f"head hash: {runs[-1].hash}"


def test_verify_with_an_anchor(runs: list[Run]) -> None:
    assert invoke("verify", "--anchor", runs[1].hash or "").exit_code == 0
    result = invoke("verify", "--anchor", "sha256:" + "0" * 64)
    assert result.exit_code == 1
    assert "is not in the chain" in result.stdout


def test_a_missing_database_is_reported_not_created(home: Path) -> None:
    result = invoke("verify")
    assert result.exit_code == 1
    assert f"no lineage database at {home / 'deskpilot.db'}" in result.stderr
    assert not (home / "deskpilot.db").exists()


def test_db_option_points_at_another_file(runs: list[Run], home: Path) -> None:
    copy = home / "auditor-copy.db"
    with closing(sqlite3.connect(home / "deskpilot.db")) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    result = invoke("verify", "--db", str(copy))
    assert result.exit_code == 0
    assert f"head hash: {runs[-1].hash}" in result.stdout


def test_verify_records_its_outcome_and_events_export(runs: list[Run], home: Path) -> None:
    assert invoke("verify").exit_code == 0
    assert invoke("verify", "--no-record").exit_code == 0
    result = invoke("export", "--table", "events", "--format", "jsonl")
    [line] = result.stdout.splitlines()  # one recorded verification: --no-record wrote nothing
    event = msgspec.json.decode(line)
    assert event["kind"] == "audit.verify" and event["actor"] == "deskpilot audit verify"
    assert event["details"]["ok"] is True and event["details"]["head_hash"] == runs[-1].hash
    assert "exported 1 event" in result.stderr

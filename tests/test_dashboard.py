"""The dashboard's data (`GET /v1/dashboard`, `POST /v1/audit/verify`) and the auditor's report (`deskpilot
audit report`), in process over a scripted session (tests/dashboard_session.py): the figures match what
lineage holds, they stay behind the token while the page's files do not, and the report is one file with
its data escaped. The same session, in Chromium: tests/e2e/test_dashboard_e2e.py."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import app_client
from dashboard_session import (
    DRIFTING_SIGNAL,
    MovingClock,
    ScriptedModel,
    Session,
    run_session,
    session_services,
)
from litestar.testing import TestClient

from deskpilot.server.app import create_app
from deskpilot.server.cli import main
from deskpilot.server.core.token import read_token
from deskpilot.server.lineage import LineageStore, RunEnd, RunStart
from deskpilot.server.ops.dashboard import dashboard_data, parse_since
from deskpilot.server.ops.report import REPORT_DATA_ID, embed_json, render_report
from deskpilot.server.ops.retention import subject_digest
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

BUILT = Path(__file__).resolve().parents[1] / "server" / "static" / "dashboard" / "index.html"


@pytest.fixture
def clock() -> MovingClock:
    return MovingClock()


@pytest.fixture
def client(app_home: Path, clock: MovingClock) -> Iterator[TestClient]:
    model = ScriptedModel()
    services = session_services(app_home, clock, model)
    with app_client(create_app(services)) as c:
        c.app.state["model"] = model
        yield c
    services.lineage.close()


@pytest.fixture
def session(client: TestClient, clock: MovingClock) -> Session:
    return run_session(client, client.app.state["services"].lineage, clock, client.app.state["model"])


def since(clock: MovingClock, hours: int = 24) -> str:
    return (clock.now - timedelta(hours=hours)).isoformat()


def test_the_figures_match_lineage(client: TestClient, clock: MovingClock, session: Session) -> None:
    r = client.get("/v1/dashboard", params={"since": since(clock), "bucket": "hour"})
    assert r.status_code == 200, r.text
    data = r.json()
    store: LineageStore = client.app.state["services"].lineage
    runs = list(store.iter_runs())
    assert len(runs) == session.summaries + session.extractions
    # Latency: the answered runs that were not cache hits, per hour of the session.
    answered = Counter(run.started_at[:13] + ":00:00Z" for run in runs if run.cache_of is None)
    assert [(p["at"], p["runs"]) for p in data["latency"]] == sorted(answered.items())
    assert len(data["latency"]) == 4 and sum(answered.values()) == len(runs) - session.cache_hits
    for point in data["latency"]:
        assert 0 < point["ttftP50Ms"] <= point["ttftP95Ms"] <= point["totalP95Ms"], point
    # Cost: every run (the cache hit too), per profile; the embedded model costs nothing.
    cost = {(p["at"], p["profile"]): p for p in data["cost"]}
    assert {profile for _, profile in cost} == {"embedded", "big"}
    assert sum(p["runs"] for p in data["cost"]) == len(runs)
    assert sum(p["cost"] for p in data["cost"]) == pytest.approx(sum(run.cost or 0 for run in runs))
    assert all(p["cost"] > 0 for (_, profile), p in cost.items() if profile == "big")
    assert all(p["cost"] == 0 for (_, profile), p in cost.items() if profile == "embedded")
    assert sum(p["tokensOut"] for p in data["cost"]) == sum(run.tokens_out or 0 for run in runs)
    # Review: every extraction went to review; one correction of two decisions overrode the model.
    quality = data["quality"]
    assert sum(p["structured"] for p in quality) == sum(p["queued"] for p in quality) == session.extractions
    assert {p["reviewRate"] for p in quality if p["structured"]} == {1.0}
    decided = [p for p in quality if p["decided"]]
    assert (decided[-1]["decided"], decided[-1]["overridden"], decided[-1]["overrideRate"]) == (2, 1, 0.5)
    assert data["slo"]["syncLatency"]["total"] == len(runs)
    # Drift: the monitor's own rows, oldest first; the currency went missing in hours 1 and 2, not 3.
    with store.reading() as conn:
        (stored,) = conn.execute(
            "SELECT COUNT(*) FROM drift_checks WHERE at >= ?", [data["since"]]
        ).fetchone()
    assert len(data["driftChecks"]) == stored > 0
    assert [c["at"] for c in data["driftChecks"]] == sorted(c["at"] for c in data["driftChecks"])
    currency = [c for c in data["driftChecks"] if c["signal"] == DRIFTING_SIGNAL]
    assert [(c["value"], c["alarm"]) for c in currency] == [(0.5, True), (1.0, True), (0.0, False)]
    events = [(e["kind"], e["details"]["signal"]) for e in data["driftEvents"]]
    assert events == [("drift.cleared", DRIFTING_SIGNAL), ("drift.alarm", DRIFTING_SIGNAL)]
    kinds = [e["kind"] for e in data["governance"]]
    assert kinds == ["audit.erase", "retention.purge", "hold.released", "hold.set"]
    policy = data["retention"]
    assert policy["policy"] == {"inputs": 1, "outputs": None, "examples": None, "synced": None}
    assert policy["hold"] is None and policy["lastPurgeAt"] == data["governance"][1]["at"]
    erased = data["governance"][0]["details"]
    assert erased["subject"] == subject_digest("ana@example.com") and "ana@example.com" not in str(erased)
    # Chain: the heads as stored, and the verification the session recorded saw them all.
    heads = {h["chain"]: h for h in data["chain"]["heads"]}
    report = store.verify()
    assert heads["runs"]["rows"] == len(runs) and heads["runs"]["headHash"] == report.head_hash
    assert heads["reviews"]["headHash"] == report.reviews_head_hash
    last = data["chain"]["lastVerification"]
    assert last["kind"] == "audit.verify" and last["actor"] == "dashboard" and last["details"]["ok"] is True
    assert last["details"]["head_hash"] == report.head_hash


def test_percentiles_are_nearest_rank_per_bucket(tmp_path: Path) -> None:
    clock = MovingClock(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    store = LineageStore(tmp_path / "l.db", clock=clock)
    start = RunStart(
        task="summarize", template_id="t", template_hash="sha256:t", model_id="m", weights_digest="sha256:w",
        backend="fake", parameters={}, input_digest="sha256:i",
    )  # fmt: skip
    for values in [[float(v) for v in range(1, 101)], [7.0], [30.0, 10.0, 20.0]]:
        for v in values:
            store.close_run(store.open_run(start), RunEnd(status="ok", ttft_ms=v, total_ms=10 * v))
        clock.advance()
    store.close_run(store.open_run(start), RunEnd(status="error", error="x", ttft_ms=1e6))  # not answered
    data = dashboard_data(store, datetime(2026, 3, 1, tzinfo=UTC), "hour")
    got = [(p.at, p.runs, p.ttft_p50_ms, p.ttft_p95_ms, p.total_p95_ms) for p in data.latency]
    assert got == [
        ("2026-03-01T09:00:00Z", 100, 50.0, 95.0, 950.0),
        ("2026-03-01T10:00:00Z", 1, 7.0, 7.0, 70.0),
        ("2026-03-01T11:00:00Z", 3, 20.0, 30.0, 300.0),
    ]
    by_day = dashboard_data(store, datetime(2026, 3, 1, tzinfo=UTC), "day")
    assert [(p.at, p.runs, p.ttft_p50_ms) for p in by_day.latency] == [("2026-03-01T00:00:00Z", 104, 48.0)]
    assert dashboard_data(store, datetime(2026, 3, 2, tzinfo=UTC), "day").latency == []
    store.close()


def test_verify_now_records_an_event_and_the_dashboard_shows_it(client: TestClient) -> None:
    before = client.get("/v1/dashboard").json()
    assert before["chain"]["lastVerification"] is None and before["driftChecks"] == []
    r = client.post("/v1/audit/verify")
    assert r.status_code == 200, r.text
    verified = r.json()
    assert (
        verified["ok"] is True and verified["problems"] == [] and verified["event"]["kind"] == "audit.verify"
    )
    after = client.get("/v1/dashboard").json()["chain"]["lastVerification"]
    assert after == verified["event"]


def test_the_data_needs_the_token_the_page_does_not(client: TestClient) -> None:
    anonymous = {"authorization": ""}
    assert client.get("/v1/dashboard", headers=anonymous).status_code == 401
    assert client.post("/v1/audit/verify", headers=anonymous).status_code == 401
    page = client.get("/dashboard/", headers=anonymous)
    assert page.status_code == 200 and "<title>Deskpilot: compliance and IT dashboard</title>" in page.text
    script = re.search(r'src="\./(app/[^"]+\.js)"', page.text)
    assert script is not None
    assert client.get(f"/dashboard/{script.group(1)}", headers=anonymous).status_code == 200
    # A dot segment is not a page file: it is refused before routing, like any other path, without the token.
    assert client.get("/dashboard/../v1/dashboard", headers=anonymous).status_code == 401
    assert client.get("/dashboard/%2e%2e/v1/dashboard", headers=anonymous).status_code in (401, 404)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"since": "last tuesday"}, "since='last tuesday' is not an RFC 3339 date-time"),
        ({"since": "2026-11-01"}, "since='2026-11-01' is not an RFC 3339 date-time"),
        ({"since": "2026-02-30T00:00:00Z"}, "is not a valid date-time: day is out of range"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since=0001-01-01T00:00:00+01:00 is out of range"),
        ({"bucket": "week"}, "bucket"),
    ],
)
def test_bad_parameters_are_400_naming_them(client: TestClient, params: dict[str, str], problem: str) -> None:
    r = client.get("/v1/dashboard", params=params)
    assert r.status_code == 400 and problem in r.text, r.text


def test_since_takes_a_date_or_a_date_time_utc_unless_it_has_an_offset() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_since("2026-02-01", now) == datetime(2026, 2, 1, tzinfo=UTC)
    assert parse_since("2026-02-01T09:30+01:00", now) == datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    assert parse_since(None, now) == datetime(2026, 1, 30, tzinfo=UTC)


def test_the_report_is_one_file_with_the_dashboard_data(
    client: TestClient, clock: MovingClock, session: Session, app_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        main, ["audit", "report", "--since", since(clock)[:10], "--bucket", "hour", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    page = out.read_text(encoding="utf-8")
    assert out.stat().st_mode & 0o077 == 0  # audit data: the user's only, like everything `deskpilot` writes
    # Nothing it refers to: no script or stylesheet file, no URL (the one data: URL is the empty icon).
    assert not re.search(r'\s(?:src|href)="(?!data:)', page)
    embedded = re.search(rf'<script type="application/json" id="{REPORT_DATA_ID}">(.*?)</script>', page, re.S)
    assert embedded is not None
    data = json.loads(embedded.group(1))
    day = f"{since(clock)[:10]}T00:00:00Z"
    live = client.get("/v1/dashboard", params={"since": day, "bucket": "hour"}).json()
    for view in ("latency", "cost", "quality", "driftChecks", "driftEvents", "governance", "chain"):
        assert data[view] == live[view], view
    assert page.count('<script type="module">') == 1


def test_deskpilot_dashboard_prints_the_address_with_the_token_in_the_fragment(app_home: Path) -> None:
    result = CliRunner().invoke(main, ["dashboard", "--no-open"])
    assert result.exit_code == 0, result.output
    settings = load_settings(home=app_home)
    token = read_token(settings.token_path)
    assert token and result.output.strip() == f"{settings.base_url}/dashboard/#token={token}"


def test_the_report_needs_a_database_and_a_valid_since(app_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["audit", "report", "--out", str(out)])
    assert result.exit_code == 1 and "no lineage database at" in result.output
    LineageStore(load_settings(home=app_home).db_path).close()
    result = CliRunner().invoke(main, ["audit", "report", "--since", "yesterday", "--out", str(out)])
    assert result.exit_code == 2 and "is not an ISO 8601 date" in result.output
    assert not out.exists()


def test_embedded_json_cannot_end_the_script_element(tmp_path: Path) -> None:
    """A value with `</script>` (an actor name, a drift signal) stays data: the page has one data element,
    and its text parses back to the same value."""
    store = LineageStore(tmp_path / "l.db")
    hostile = '</script><script>alert("x")</script><!-- & \u2028'
    store.record_event("hold.set", {"matter": hostile}, actor=hostile)
    data = dashboard_data(store, parse_since("2000-01-01", store.now()))
    store.close()
    text = embed_json(data)
    assert "<" not in text and ">" not in text and json.loads(text)["governance"][0]["actor"] == hostile
    page = render_report(data)
    assert page.count("</script>") == 2  # the data element's and the module script's own
    (embedded,) = re.findall(rf'id="{REPORT_DATA_ID}">(.*?)</script>', page, re.S)
    assert json.loads(embedded)["governance"][0]["details"]["matter"] == hostile


def fill_runs(store: LineageStore, count: int, base: datetime) -> None:
    """`count` runs, 26 s apart, written straight into the table (chain links, hashes not verified)."""
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO runs (id, started_at, finished_at, task, template_id, template_hash, model_id,"
            " weights_digest, backend, parameters, input_digest, client, retrieved_chunks, status,"
            " confidence, ttft_ms, total_ms, tokens_in, tokens_out, cost, profile, prev_hash, hash)"
            " VALUES (?, ?, ?, 'summarize', 't', 't', 'm', 'w', 'fake', '{}', 'i', 'api', '[]', 'ok',"
            " ?, ?, ?, 100, 20, 0.0, ?, ?, ?)",
            [
                (
                    f"r{i}",
                    (ts := (base + timedelta(seconds=26 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
                    ts,
                    0.9 if i % 10 == 0 else None,
                    float(i % 500),
                    float(i % 500) * 4,
                    "embedded" if i % 3 else "remote",
                    f"h{i - 1}" if i else None,
                    f"h{i}",
                )
                for i in range(count)
            ],
        )


def test_many_runs_aggregate_into_every_bucket(tmp_path: Path) -> None:
    """Aggregated in SQL over every run (bench/bench_dashboard.py times it on 100,000)."""
    store = LineageStore(tmp_path / "l.db")
    base = datetime(2026, 3, 1, tzinfo=UTC)
    fill_runs(store, 10_000, base)
    data = dashboard_data(store, base, "hour")
    store.close()
    assert sum(p.runs for p in data.latency) == 10_000 and len(data.latency) == 73
    assert sum(p.runs for p in data.cost) == 10_000 and {p.profile for p in data.cost} == {
        "embedded",
        "remote",
    }

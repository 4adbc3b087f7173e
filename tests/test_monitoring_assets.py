"""The IT monitoring assets (installer/monitoring/) against the real server: every metric, label and bucket
bound the Grafana dashboard and the alert rules name is one `GET /metrics` exposes, and the Prometheus
scrape example's recipe (HTTPS with the local CA, the token file as bearer credentials) gets a scrape.

A dashboard query that names a metric the server does not expose draws an empty panel and an alert on it
never fires; nothing else would notice. So the names are read out of every PromQL expression and looked up
in a scrape taken after traffic that makes every family carry samples (runs, an error, an extraction, a
review, a workflow, an action, a sync), parsed by prometheus-client's own parser.
"""

from __future__ import annotations

import json
import re
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from conftest import REPO, app_client, free_port, parse_sse
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from samples import ANA, EMAIL, INVOICE, INVOICE_TEXT
from uvicorn_thread import UvicornThread

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import BackendError, GenerationRequest, ScriptedBackend, Token
from deskpilot.installer._ca import CA_CERT, ensure_ca, ensure_server_cert
from deskpilot.server.app import create_app
from deskpilot.server.connectors.state import ItemRow, SyncState
from deskpilot.server.settings import load_settings
from deskpilot.server.web.runner import uvicorn_config

pytestmark = pytest.mark.integration

MONITORING = REPO / "installer" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
SCRAPE = MONITORING / "prometheus.yml"
ALERTS = MONITORING / "alerts.yml"
GUIDE = REPO / "installer" / "README.md"

# The Linux app data folder the examples name (USER is the placeholder the guide tells IT to replace).
EXAMPLE_HOME = "/home/USER/.local/share/deskpilot"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
ROWS = [
    "Latency",
    "Throughput and errors",
    "Model queue",
    "Cost and tokens",
    "Quality",
    "Workflows, actions, outbox and sync",
    "SLOs and error budget",
    "Drift",
    "Process and GPU resources",
]
# Labels Prometheus adds to every series it scrapes (the target's); the server never writes them.
TARGET_LABELS = {"job", "instance"}
# Series Prometheus makes itself, not the server: `up` is 1 when a scrape succeeded.
SYNTHESIZED = {"up"}
# The drift gauges as issue 17 names them: the Drift row and the drift alert read them by task and signal.
DRIFT = {"deskpilot_drift_value": {"task", "signal"}, "deskpilot_drift_alarm": {"task", "signal"}}
# Drift compares a task's first runs with its last ones: the smallest windows the settings allow, so that a
# few extractions give the drift gauges samples.
DRIFT_WINDOW = 20

# The scripted model fails after this many tokens; only the answer to FAIL_SUBJECT is that long.
FAIL_AFTER = 60
FAIL_SUBJECT = "Please fail"


# --- reading PromQL -------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r'\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\}')
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\")")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][\w:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_KEYWORDS |= {"group_left", "group_right", "inf", "nan"}
_RATE_ARGUMENT = re.compile(r"\b(rate|irate|increase)\(\s*([A-Za-z_:][\w:]*)")


@dataclass
class Selector:
    """A metric an expression reads, with its label matchers: (label, operator, quoted value)."""

    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Query:
    """What one PromQL expression refers to: its metrics and every label name it groups or filters by."""

    expr: str
    selectors: list[Selector]
    labels: set[str]


def read_promql(expr: str) -> Query:
    """The metric names of an expression: every identifier that is not a function (followed by `(`), a
    keyword, a label name (in `{...}` or a grouping clause), a string, a duration or a number."""
    selectors: list[Selector] = []
    labels: set[str] = set()
    # Label matchers hold strings (a regex may hold `{` or `(`): read them before the strings go.
    for body in _MATCHERS.findall(expr):
        labels.update(name for name, _, _ in _MATCHER.findall(body))
    bare = _STRING.sub('""', expr)
    for _, names in _GROUPING.findall(bare):
        labels.update(n.strip() for n in names.split(",") if n.strip())
    bare = _RANGE.sub(" ", _GROUPING.sub(" ", bare))
    matchers = [_MATCHER.findall(body) for body in _MATCHERS.findall(expr)]
    bare = re.sub(r"\{[^}]*\}", "{}", bare)  # the strings are gone: no `}` but the closing one
    for found in _IDENTIFIER.finditer(bare):
        name, rest = found.group(), bare[found.end() :].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue
        selectors.append(Selector(name, matchers.pop(0) if rest.startswith("{") else []))
    assert not [m for m in matchers if m], f"label matchers without a metric in {expr!r}"
    return Query(expr, selectors, labels)


def test_reading_promql_finds_metrics_not_functions_labels_or_strings() -> None:
    """The reader itself: a test of names that missed some would pass whatever the dashboard says."""
    query = read_promql(
        'histogram_quantile(0.95, sum by (le, task) (rate(a_seconds_bucket{job=~"$job", x="b{c}"}[5m])))'
        " / on (job) group_left sum without (le) (increase(b_total[$__range] offset 1h)) * 1e9"
        ' and label_replace(c_ratio < 0.25, "slo", "$1", "__name__", "d_(.+)")'
    )
    assert [s.metric for s in query.selectors] == ["a_seconds_bucket", "b_total", "c_ratio"]
    assert query.selectors[0].matchers == [("job", "=~", '"$job"'), ("x", "=", '"b{c}"')]
    assert query.labels == {"le", "task", "job", "x"}


# --- the scrape -----------------------------------------------------------------------------------------


@dataclass
class Scrape:
    """What one `GET /metrics` exposes: every series name with its family's type, and per name the label
    names and values its samples carry."""

    types: dict[str, str]  # exposed name (with _total, _bucket, ... as PromQL sees it) -> family type
    families: dict[str, str]  # exposed name -> its family's name
    labels: dict[str, dict[str, set[str]]]  # exposed name -> label name -> values seen


# The series names a family of each type exposes (an empty family still has its HELP and TYPE lines).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "unknown": ("",),
}


def parse_scrape(text: str) -> Scrape:
    scrape = Scrape({}, {}, {})
    for family in text_string_to_metric_families(text):
        names = {family.name + suffix for suffix in _SUFFIXES[family.type]}
        for name in names | {sample.name for sample in family.samples}:
            scrape.types[name], scrape.families[name] = family.type, family.name
        for sample in family.samples:
            seen = scrape.labels.setdefault(sample.name, {})
            for name, value in sample.labels.items():
                seen.setdefault(name, set()).add(value)
    return scrape


def scripted_model(request: GenerationRequest) -> list[Token]:
    """A summary for text tasks (a long one, which the backend fails part way, for FAIL_SUBJECT), the
    invoice JSON for extraction."""
    if request.json_schema is not None:
        text = json.dumps(INVOICE)
        return [Token(text[i : i + 4], -0.01) for i in range(0, len(text), 4)]
    if any(FAIL_SUBJECT in m.content for m in request.messages):
        return [Token(" word") for _ in range(FAIL_AFTER + 5)]
    return [Token(t) for t in ["Ana", " wants", " the", " numbers", "."]]


def make_traffic(client: TestClient) -> None:
    """Requests that give every family of the scrape samples (the GPU's aside): summaries, one that fails,
    extractions enough for a drift check (the first reviewed), a workflow, an action, a sync."""
    failing = {"email": {**EMAIL["email"], "subject": FAIL_SUBJECT, "body": FAIL_SUBJECT}}
    for body, last in ((EMAIL, "done"), (failing, "error")):
        r = client.post("/v1/summarize", json={**body, "cache": False})
        assert r.status_code == 200 and [e for e, _ in parse_sse(r.text)][-1] == last, r.text
    reviews = []
    for i in range(2 * DRIFT_WINDOW):
        r = client.post("/v1/extract", json={"text": f"{INVOICE_TEXT}Ref {i}", "schema": "invoice"})
        reviews.append(next(data for name, data in parse_sse(r.text) if name == "result")["review"])
    decision = {"decision": "edit", "reviewer": ANA, "fields": {"total": 102}}
    assert client.post(f"/v1/reviews/{reviews[0]['id']}", json=decision).status_code == 200
    assert client.get("/v1/drift").json()["signals"], "no drift check"
    workflow = {"automation": "meeting_followup", "inputs": {"text": "Ann sends the deck"}, "requestId": "r1"}
    assert client.post("/v1/workflows", json=workflow).status_code == 202
    hook = {"kind": "webhook", "params": {"url": "http://127.0.0.1:9/hook", "payload": {"a": 1}}}
    action = client.post("/v1/actions", json=hook).json()["action"]
    assert client.post(f"/v1/actions/{action['id']}/approve", json={"reviewer": ANA}).status_code == 200
    state = SyncState(client.app.state["services"].settings.sync_db_path)
    try:
        state.finish_run(state.start_run(), "ok", {"indexed": 1})
        item = ItemRow(
            source="graph:file:1", scope="drive", kind="file", graph_id="1", parent=None, tag=None,
            indexed=False, skipped="too large",
        )  # fmt: skip
        state.commit_page("drive", 1, put=[item.as_put()])
    finally:
        state.close()


def cuda_stand_in() -> SimpleNamespace:
    """What GpuCollector reads from a loaded torch with CUDA, for one GPU: the machines that run the tests
    have none, and the dashboard's GPU panel must still name what the collector writes."""
    cuda = SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 1,
        utilization=lambda index: 42,
        memory_allocated=lambda index: 2**30,
    )
    return SimpleNamespace(cuda=cuda)


@pytest.fixture
def scrape(app_home: Path, monkeypatch: pytest.MonkeyPatch) -> Scrape:
    settings = load_settings(
        home=app_home,
        https=False,
        webhook_allow=("http://127.0.0.1:9/",),
        drift_reference_size=DRIFT_WINDOW,
        drift_window_size=DRIFT_WINDOW,
    )
    backend = ScriptedBackend(
        scripted_model, fail_with=BackendError("the model crashed"), fail_after=FAIL_AFTER
    )
    index = DocumentIndex(app_home / "index", embedder=HashEmbedder())
    with app_client(create_app(settings, backend=backend, index=index)) as client:
        make_traffic(client)
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, "torch", cuda_stand_in())
            r = client.get("/metrics")
    assert r.status_code == 200, r.text
    return parse_scrape(r.text)


# --- the assets -----------------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboard (panels and variables) and the alert rules, by where."""
    found = {
        f"panel {p['id']} {p['title']!r} {t['refId']}": t["expr"] for p in panels() for t in p["targets"]
    }
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(<selector>, <label>): the selector is PromQL; the label must be one it carries.
            inner = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert inner and variable["query"]["query"] == variable["definition"], variable
            found[f"variable {variable['name']}"] = f"count by ({inner[2]}) ({inner[1]})"
    found.update({f"alert {rule['alert']}": rule["expr"] for rule in alert_rules()})
    return found


def missing(scrape: Scrape, query: Query) -> list[str]:
    """What `query` names that the scrape does not have: metrics, labels on them, `le` bounds."""
    problems = []
    carried = set(TARGET_LABELS)
    for selector in query.selectors:
        name = selector.metric
        if name in SYNTHESIZED:
            continue
        if name not in scrape.types:
            problems.append(f"metric {name}")
            continue
        seen = scrape.labels.get(name, {})
        carried |= set(seen)
        for label, op, value in selector.matchers:
            bound = value.strip('"')
            if label == "le" and op == "=" and bound not in seen.get("le", set()):
                problems.append(f"{name} has no bucket le={value} (it has {sorted(seen.get('le', []))})")
    problems += [f"label {label}" for label in sorted(query.labels - carried)]
    return problems


def test_every_metric_label_and_bucket_the_dashboard_and_alerts_name_is_exposed(scrape: Scrape) -> None:
    queries = {where: read_promql(expr) for where, expr in expressions().items()}
    assert len(queries) > 40 and all(q.selectors for q in queries.values()), queries
    wrong = {where: p for where, q in queries.items() if (p := missing(scrape, q))}
    assert not wrong, json.dumps(wrong, indent=1)
    # And the other way: every deskpilot_ family the server exposes is on the dashboard or in an alert.
    read = {scrape.families.get(s.metric) for q in queries.values() for s in q.selectors}
    # (`_created`: prometheus-client's creation time of each counter and histogram, a family of its own.)
    exposed = {
        f for f in scrape.families.values() if f.startswith("deskpilot_") and not f.endswith("_created")
    }
    assert exposed <= read, f"metrics with no panel in {DASHBOARD.name}: {sorted(exposed - read)}"


def test_the_drift_gauges_are_as_the_issue_names_them(scrape: Scrape) -> None:
    """`deskpilot_drift_value` and `deskpilot_drift_alarm`, gauges by task and signal, are what the Drift
    row and the drift alert read, and what the server exposes once a drift check ran."""
    queries = [read_promql(expr) for expr in expressions().values()]
    for name, labels in DRIFT.items():
        assert any(name in {s.metric for s in q.selectors} for q in queries), f"nothing reads {name}"
        assert scrape.types.get(name) == "gauge" and set(scrape.labels[name]) == labels, name
    assert scrape.labels["deskpilot_drift_alarm"]["task"] == {"extract:invoice"}


def test_rates_are_taken_of_counters_and_quantiles_of_buckets_by_le(scrape: Scrape) -> None:
    """rate() of a gauge and a histogram_quantile without `le` in its `by` are the classic PromQL slips:
    both give numbers, wrong ones."""
    for where, expr in expressions().items():
        for function, name in _RATE_ARGUMENT.findall(expr):
            kind = scrape.types.get(name)
            counts = name.endswith(("_total", "_bucket", "_count", "_sum"))
            assert counts and kind in ("counter", "histogram"), f"{where}: {function}({name}) of a {kind}"
        for call in re.finditer(r"histogram_quantile\(", expr):
            inner = expr[call.end() :]
            assert re.match(r"[\d.]+,\s*sum by \(le\b", inner) and "_bucket{" in inner, f"{where}: {expr}"


def test_the_dashboard_imports_anywhere() -> None:
    """One datasource variable, no datasource uid of this installation, every panel placed and querying."""
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41 and board["uid"] == "deskpilot-overview"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert [p["title"] for p in board["panels"] if p["type"] == "row"] == ROWS
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for p in board["panels"]:
        grid = p["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid) and grid["x"] + grid["w"] <= 24, p["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
    for p in panels():
        assert p["datasource"] == DATASOURCE and p["targets"] and p["title"] and p["description"], p
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for target in p["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip(), (p["title"], target)
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text(encoding="utf-8")))
    assert uids == {"${DS_PROMETHEUS}", "-- Grafana --", "deskpilot-overview"}, uids


def test_the_alert_rules_are_well_formed() -> None:
    rules = alert_rules()
    assert {"DeskpilotDriftAlarm", "DeskpilotLatencyBudgetFastBurn", "DeskpilotRunErrorRate"} <= {
        r["alert"] for r in rules
    }
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule
        assert "{{ $labels.instance }}" in rule["annotations"]["summary"], rule
        expr = _STRING.sub('""', rule["expr"])
        pairs = {"(": ")", "[": "]", "{": "}"}
        stack: list[str] = []
        for char in expr:
            if char in pairs:
                stack.append(pairs[char])
            elif char in pairs.values():
                assert stack and stack.pop() == char, f"{rule['alert']}: unbalanced {char}"
        assert not stack, f"{rule['alert']}: unclosed {stack}"


def test_the_scrape_example_uses_the_token_file_and_the_local_ca(app_home: Path) -> None:
    config = yaml.safe_load(SCRAPE.read_text(encoding="utf-8"))
    assert config["rule_files"] == [ALERTS.name] and ALERTS.is_file()
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "deskpilot"]
    assert job["scheme"] == "https" and job["metrics_path"] == "/metrics"
    token = load_settings(home=app_home).token_path.relative_to(app_home).as_posix()
    assert job["authorization"] == {"type": "Bearer", "credentials_file": f"{EXAMPLE_HOME}/{token}"}
    assert job["tls_config"] == {"ca_file": f"{EXAMPLE_HOME}/ca/{CA_CERT}"}  # verified, never skipped
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8765"]}]
    guide = GUIDE.read_text(encoding="utf-8")
    for said in ("deskpilot token show --path", f"ca/{CA_CERT}", "installer/monitoring/prometheus.yml"):
        assert said in guide, f"the IT guide does not say {said!r}"
    assert "grafana-dashboard.json" in guide and "alerts.yml" in guide


class LiveServer:
    """The app under uvicorn on 127.0.0.1 over HTTPS, as `deskpilot serve` runs it after an install."""

    def __init__(self, home: Path) -> None:
        ca_cert, ca_key, _ = ensure_ca(home / "ca")  # what `deskpilot install` does first
        ensure_server_cert(home / "tls", ca_cert, ca_key)
        self.port = free_port()
        settings = load_settings(home=home, https=True, port=self.port)
        index = DocumentIndex(home / "index", embedder=HashEmbedder())
        app = create_app(settings, backend=ScriptedBackend(["Hello", "."]), index=index)
        self.uvicorn = UvicornThread(uvicorn_config(app, settings)).start()

    def stop(self) -> None:
        self.uvicorn.stop()


@pytest.fixture
def live(app_home: Path) -> Iterator[LiveServer]:
    server = LiveServer(app_home)
    yield server
    server.stop()


def test_the_scrape_example_gets_a_scrape_from_an_installed_server(live: LiveServer, app_home: Path) -> None:
    """What Prometheus does with prometheus.yml, against a real server over a socket: verify the server's
    certificate with the CA file, present the token file's content as a bearer token, no Origin."""
    job = yaml.safe_load(SCRAPE.read_text(encoding="utf-8"))["scrape_configs"][0]

    def here(path: str) -> Path:
        return app_home / Path(path).relative_to(EXAMPLE_HOME)

    ca = ssl.create_default_context(cafile=str(here(job["tls_config"]["ca_file"])))
    token = here(job["authorization"]["credentials_file"]).read_text(encoding="utf-8").strip()
    url = f"{job['scheme']}://127.0.0.1:{live.port}{job['metrics_path']}"
    scraped = httpx.get(url, verify=ca, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert scraped.status_code == 200, scraped.text
    assert "deskpilot_http_responses_total" in parse_scrape(scraped.text).types
    refused = httpx.get(url, verify=ca, headers={"Authorization": "Bearer not-the-token"}, timeout=30)
    assert refused.status_code == 401

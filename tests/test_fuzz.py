"""Schemathesis over the whole OpenAPI document, against the app in this process with a scripted model.

Every operation of the document the server serves at /openapi, every check schemathesis has (a 5xx, a
status, content type, body or header the document does not list, a request the document calls valid that
is refused or one it calls invalid that is accepted, a wrong `Allow`, a missing-auth request let in, ...),
in every phase that applies: the examples, the coverage phase (boundary values of each field, each
parameter missing or mistyped, undocumented methods), random fuzzing, and stateful sequences that feed
one response's values into the next request. The token header is set, so requests reach the handlers
(and the ignored-auth check sends some without it). Derandomized with a fixed seed and a bounded number of
examples per operation: the same cases every run, in about half a minute on two cores. `bench/bench_fuzz.py`
runs the same with more examples.

What it found, fixed in the server or the document (tests/test_hardening.py has each as a test):
500s (a body field named like a dependency, `since` >= 2**63, JSON nested a thousand deep), Litestar's
own error body, errors and streams the document did not list, lenient decoding (`"3"` taken for 3), a
wrong `Allow`, and checks the server makes that the document did not say (blank text, exactly one of
`text` and `email`, control characters in a name, a datetime's format, an action's params by kind).

One allowance, for five operations, and only for the check that a valid request is accepted: these
refuse with 400 a request whose every field is valid but that names something the server's state or
configuration refuses (`STATEFUL_400`). A document cannot know the server's state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis
from conftest import BASE
from litestar import Litestar
from schemathesis.engine import events
from schemathesis.engine import from_schema as engine_for
from schemathesis.engine.statistic import Statistic

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.core.token import read_token
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

SEED = 13
MAX_EXAMPLES = 25

# Operations that answer 400 to a schema-valid request that names what the server's state refuses.
STATEFUL_400 = {
    ("POST", "/v1/actions"): "a webhook URL that no `webhook_allow` entry allows",
    ("POST", "/v1/extract"): "a schema name that is neither built in nor in the schemas folder",
    ("POST", "/v1/reviews/{review_id}"): "edited fields that the result under review does not have",
    ("POST", "/v1/workflows"): "an automation that has no workflow",
    ("PUT", "/v1/index/roots"): "a folder that does not exist, is relative, is a drive or holds the app data",
}


class Figures(msgspec.Struct):
    operations: int
    cases: int
    failures: int
    seconds: float
    by_phase: dict[str, int]
    report: list[str]


def fuzz_app(home: Path) -> Litestar:
    """The production app with a scripted model and a torch-free embedder, in `home`."""
    index = DocumentIndex(home / "index", embedder=HashEmbedder())
    backend = ScriptedBackend(["Ana", " wants", " the", " numbers", " by", " Friday", "."])
    return create_app(load_settings(home=home, https=False), backend=backend, index=index)


def run_schemathesis(app: Litestar, *, max_examples: int, seed: int = SEED) -> Figures:
    token = read_token(app.state["services"].settings.token_path)
    headers = {"Authorization": f"Bearer {token}"}
    allow_400 = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
    config = schemathesis.Config.from_dict(
        {
            "seed": seed,
            "base-url": BASE,  # a Host the server answers on (schemathesis's own is "testserver")
            "headers": headers,
            "generation": {"max-examples": max_examples, "deterministic": True},
            "operations": [
                {
                    "include-method": method,
                    "include-path": path,
                    "checks": {"positive_data_acceptance": {"expected-statuses": allow_400}},
                }
                for method, path in STATEFUL_400
            ],
        }
    )
    schema = schemathesis.openapi.from_asgi(
        "/openapi", app, config=config, headers={**headers, "Host": BASE.removeprefix("http://")}
    )
    statistic, by_phase, report = Statistic(), dict[str, int](), list[str]()
    started = time.monotonic()
    for event in engine_for(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            statistic.on_scenario_finished(event.recorder)
            phase = str(event.phase.value)
            by_phase[phase] = by_phase.get(phase, 0) + len(event.recorder.cases)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            report.append(f"error: {event.info.format()}")
    for label, grouped in statistic.failures.items():
        for group in grouped.values():
            for failure in group.failures:
                report.append(f"{label}: {failure.title}: {failure.message}\n  {group.code_sample}")
    return Figures(
        operations=len(statistic.tested_operations),
        cases=statistic.total_cases,
        failures=statistic.total_failures,
        seconds=round(time.monotonic() - started, 1),
        by_phase=by_phase,
        report=report,
    )


@pytest.fixture
def app(app_home: Path) -> Iterator[Litestar]:
    app = fuzz_app(app_home)
    yield app
    from schemathesis.python.asgi import shutdown_lifespans  # the app's shutdown, which the run started

    shutdown_lifespans()


@pytest.mark.slow  # every operation of the API, thousands of cases: ~25 s
def test_schemathesis_finds_nothing(app: Litestar, capsys: pytest.CaptureFixture[str]) -> None:
    figures = run_schemathesis(app, max_examples=MAX_EXAMPLES)
    with capsys.disabled():
        print(
            f"\nschemathesis: {figures.operations} operations, {figures.cases} cases {figures.by_phase}, "
            f"{figures.failures} failures, {figures.seconds} s"
        )
    assert figures.report == [], "\n".join(figures.report)
    document: dict[str, Any] = app.openapi_schema.to_schema()
    every = sum(1 for item in document["paths"].values() for method in item if method != "parameters")
    assert figures.failures == 0 and figures.operations == every and figures.cases > 1_000

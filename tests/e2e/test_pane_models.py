"""Settings → Models and the line under every answer, end to end: real headless Chromium at Office's
narrowest pane (320 px), the real server (`deskpilot serve`, the embedded model loaded) with a config.toml of
three profiles, and two OpenAI-compatible "remote" servers on 127.0.0.1: one that refuses connections
(`down`, a port nothing listens on) and the fault proxy in echo mode (`cloud`: it streams the prompt it
received back, so what left the computer is what the user reads, placeholders restored).

Summaries route `down → cloud → embedded`. The first summary falls back from `down` to `cloud`, with the
person names and addresses of the message masked; `down`'s breaker opens after that one failure, so the
second goes to `cloud` directly and is recorded in the result cache; the third repeats it. Settings shows
the profiles, the routes, the breaker, and the use against the budgets as /v1/usage reports them.

Screenshots: settings-models.png, answer-fallback-masked.png, answer-repeated.png (test-artifacts/taskpane/).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess, free_port
from openai_server import Fault, FaultProxy
from playwright.sync_api import Locator, expect

from .conftest import Pane, PaneFactory
from .test_taskpane_e2e import open_outlook, started, summarize_button, wait_idle

pytestmark = [pytest.mark.model, pytest.mark.e2e]

# The pane's words per masked category (taskpane/src/shared/models.ts), in the server's order.
MASKED_WORDS = {
    "PERSON": ("name", "names"),
    "EMAIL": ("email address", "email addresses"),
    "PHONE": ("phone number", "phone numbers"),
    "IBAN": ("IBAN", "IBANs"),
    "CARD": ("card number", "card numbers"),
    "ADDRESS": ("address", "addresses"),
}


def config(echo_url: str, down_url: str) -> str:
    """IT's config.toml: two remote profiles in front of the embedded model, budgets on both levels."""
    return f"""
breaker_failures = 1
breaker_cool_seconds = 600

[models.down]
backend = "openai"
base_url = "{down_url}/v1"
model = "gpt-x"
locality = "remote"
max_retries = 0
connect_timeout = 1.0

[models.cloud]
backend = "openai"
base_url = "{echo_url}/v1"
model = "echo"
locality = "remote"
pii = "mask"
price_in_per_1k = 0.5
price_out_per_1k = 1.0
daily_budget = 50.0
daily_tokens = 200000

[routes.summarize]
use = ["down", "cloud", "embedded"]
daily_budget = 40.0
"""


def cost_text(value: float) -> str:
    """The pane's costs: grouped, at least 2 decimals and at most 4."""
    text = f"{value:,.4f}"
    while text.endswith("0") and len(text.split(".")[1]) > 2:
        text = text[:-1]
    return text


def masked_text(masked: dict[str, int]) -> str:
    parts = [
        f"{masked[c]} {MASKED_WORDS[c][0] if masked[c] == 1 else MASKED_WORDS[c][1]}"
        for c in MASKED_WORDS
        if masked.get(c)
    ]
    return "masked before sending: " + ", ".join(parts)


@pytest.fixture
def echo() -> Iterator[FaultProxy]:
    proxy = FaultProxy("http://127.0.0.1:9")  # never forwards: every request is echoed
    proxy.sticky = Fault(echo=3)
    yield proxy
    proxy.close()


@pytest.fixture
def server(server_factory: type[ServerProcess], app_home: Path, echo: FaultProxy) -> ServerProcess:
    app_home.mkdir(parents=True, exist_ok=True)
    (app_home / "config.toml").write_text(config(echo.url, f"http://127.0.0.1:{free_port()}"))
    return started(server_factory())


def models_section(pane: Pane) -> Locator:
    pane.page.get_by_role("tab", name="Settings").click()
    section = pane.page.get_by_test_id("models")
    expect(section.get_by_test_id("profile")).to_have_count(3)
    return section


def summarize(pane: Pane, server: ServerProcess) -> dict[str, Any]:
    """Summarize the open message and wait for the answer; its lineage record."""
    pane.page.get_by_role("tab", name="Mail").click()
    wait_idle(server)
    summarize_button(pane).click()
    expect(pane.page.get_by_test_id("run")).to_have_attribute("data-phase", "done")
    with server.client() as client:
        return dict(client.get(f"/v1/runs/{pane.run_id()}").json())


def assert_fits(pane: Pane) -> None:
    """Nothing wider than the pane: no sideways scrolling at 320 px."""
    width = pane.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 320, f"the pane scrolls sideways: {width} px wide"


def test_settings_shows_profiles_routes_and_budgets_and_each_answer_says_how_it_was_answered(
    pane_factory: PaneFactory, server: ServerProcess, echo: FaultProxy
) -> None:
    pane = open_outlook(pane_factory, server)
    page = pane.page

    # Settings → Models, before any answer: every profile, every route, the budgets untouched.
    models = models_section(pane)
    expect(models.get_by_test_id("models-hint")).to_contain_text("deskpilot models use")
    embedded = models.locator('[data-testid="profile"][data-name="embedded"]')
    expect(embedded.get_by_test_id("locality")).to_have_text("On this computer")
    expect(embedded.get_by_test_id("where")).to_contain_text("llama.cpp")
    expect(embedded.get_by_test_id("pii")).to_have_count(0)  # nothing leaves the computer
    cloud = models.locator('[data-testid="profile"][data-name="cloud"]')
    expect(cloud.get_by_test_id("locality")).to_have_text("Remote")
    expect(cloud.get_by_test_id("where")).to_contain_text(f"echo at {echo.url}/v1")
    expect(cloud.get_by_test_id("pii")).to_have_text("Personal data is masked before it is sent.")
    expect(cloud.get_by_test_id("price")).to_have_text("0.50 in, 1.00 out per 1,000 tokens")
    expect(cloud.get_by_test_id("state")).to_have_text("not started yet")
    down = models.locator('[data-testid="profile"][data-name="down"]')
    expect(down.get_by_test_id("breaker")).to_have_count(0)
    summaries = models.locator('[data-testid="route"][data-task="summarize"]')
    expect(summaries).to_contain_text("Summaries")
    expect(summaries.get_by_test_id("chain")).to_have_text("down → cloud → embedded")
    expect(models.locator('[data-testid="route"][data-task="default"]').get_by_test_id("chain")).to_have_text(
        "embedded"
    )
    expect(models.get_by_test_id("budget")).to_have_count(3)  # cloud's cost and tokens, summaries' cost
    summaries_budget = models.locator('[data-testid="budget"][data-scope="task"]')
    expect(summaries_budget).to_contain_text("Summaries, today's cost")
    expect(summaries_budget.get_by_test_id("spent")).to_have_text("0.00 of 40.00")
    expect(models.get_by_test_id("usage-today")).to_have_text("Nothing yet.")
    assert_fits(pane)
    models.scroll_into_view_if_needed()
    pane.shot("settings-models")

    # 1: `down` refuses the connection; `cloud` answers, with the message's personal data masked.
    run = summarize(pane, server)
    assert run["profile"] == "cloud" and run["status"] == "ok"
    expect(page.get_by_test_id("run-model")).to_have_text("answered by cloud (echo)")
    fallback = page.get_by_test_id("run-fallback")
    expect(fallback).to_be_visible()
    expect(fallback).to_contain_text(re.compile(r"^fallback: model profile 'down': .+"))
    masked = run["pii"]["masked"]
    assert masked.get("PERSON") and masked.get("EMAIL"), masked  # Carol Diaz, Bob Lee and their addresses
    expect(page.get_by_test_id("run-masked")).to_have_text(masked_text(masked))
    expect(page.get_by_test_id("run-cached")).to_have_count(0)
    for value in ("Carol Diaz", "bob@example.com"):
        assert value not in str(echo.bodies[-1])  # what left the computer
        assert any(value in text for _, text, _ in pane.texts())  # what the user reads as it streams
    assert_fits(pane)
    pane.shot("answer-fallback-masked")

    # 2: `down` is skipped for now (its breaker is open), so no fallback: `cloud` answers at once.
    run = summarize(pane, server)
    assert run["profile"] == "cloud" and not run.get("cacheOf")
    expect(page.get_by_test_id("run-model")).to_have_text("answered by cloud (echo)")
    expect(page.get_by_test_id("run-fallback")).to_have_count(0)
    expect(page.get_by_test_id("run-masked")).to_have_text(masked_text(masked))

    # 3: the same message, model, template and settings: the recorded answer is repeated.
    requests_before = len(echo.bodies)
    run = summarize(pane, server)
    assert run["cacheOf"], run
    assert len(echo.bodies) == requests_before  # nothing was sent
    expect(page.get_by_test_id("run-cached")).to_have_text("repeated from an earlier answer")
    expect(page.get_by_test_id("run-model")).to_have_text("answered by cloud (echo)")
    expect(page.get_by_test_id("run-masked")).to_have_text(masked_text(masked))
    pane.shot("answer-repeated")

    # Settings again: the breaker's note, and the use as /v1/usage counts it.
    models = models_section(pane)
    expect(down.get_by_test_id("breaker")).to_contain_text("Skipped for now: circuit open after 1 failures")
    expect(cloud.get_by_test_id("state")).to_have_text("ready")
    with server.client() as client:
        usage = client.get("/v1/usage").json()
    lines = {(x["profile"], x["task"]): x for x in usage["today"]}
    assert lines[("cloud", "summarize")]["runs"] == 3 and lines[("down", "summarize")]["runs"] == 1
    cloud_today = models.get_by_test_id("usage-today").get_by_test_id("usage-line").filter(has_text="cloud")
    line = lines[("cloud", "summarize")]
    tokens = line["tokensIn"] + line["tokensOut"]
    expect(cloud_today).to_have_text(
        f"cloud, summaries: 3 requests · {tokens:,} tokens · cost {cost_text(line['cost'])}"
    )
    (task_budget,) = [x for x in usage["limits"] if x["scope"] == "task"]
    assert task_budget["spent"] > 0
    spent = summaries_budget.get_by_test_id("spent")
    expect(spent).to_have_text(f"{cost_text(task_budget['spent'])} of 40.00")
    bar = summaries_budget.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^0\.\d+"))
    assert_fits(pane)
    models.scroll_into_view_if_needed()
    pane.shot("settings-models-used")
    assert pane.errors == []

"""Answers people can trust, in the pane (issue 15), end to end: real headless Chromium at Office's
narrowest pane (320 px), the real server (`deskpilot serve`, its faithfulness check over the search
model), and for summaries a scripted OpenAI-compatible model on 127.0.0.1, so what the model "wrote" is
known: one supported sentence, one with a wrong day (the check quotes the source sentence it paraphrases)
and one about a person the email never names (removed).

Screenshots (test-artifacts/taskpane/): trust-summary-grounded.png, trust-summary-source.png.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import ServerProcess
from playwright.sync_api import expect

from .conftest import Pane, PaneFactory
from .test_taskpane_e2e import open_outlook, started, summarize_button, wait_idle

pytestmark = [pytest.mark.model, pytest.mark.e2e]

SUMMARY = (
    "Carol needs the Q3 sales figures and the churn analysis from Bob's team by Tuesday evening. "
    "The board meeting moved to Friday 10 am. Marco will present the plan to the board."
)
HEADLINE = "Q3 figures and churn analysis due Tuesday"


class ScriptedModel:
    """An OpenAI-compatible chat server on 127.0.0.1 that streams a fixed answer: the headline for the
    subject-line prompt, else the summary. Every request body is kept."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        model = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = msgspec.json.decode(self.rfile.read(int(self.headers["Content-Length"])))
                model.bodies.append(body)
                prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
                text = HEADLINE if "subject line" in prompt else SUMMARY
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                for word in text.split(" "):
                    chunk = {"model": "scripted", "choices": [{"index": 0, "delta": {"content": word + " "}}]}
                    self.wfile.write(b"data: " + msgspec.json.encode(chunk) + b"\n\n")
                usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text.split())}
                last = {"model": "scripted", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(b"data: " + msgspec.json.encode({**last, "usage": usage}) + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedModel]:
    model = ScriptedModel()
    yield model
    model.close()


@pytest.fixture
def server(server_factory: type[ServerProcess], app_home: Path, scripted: ScriptedModel) -> ServerProcess:
    """Summaries go to the scripted model; everything else to the embedded one. Inputs are kept, so a
    review can show its source."""
    app_home.mkdir(parents=True, exist_ok=True)
    (app_home / "config.toml").write_text(
        f"""
[models.scripted]
backend = "openai"
base_url = "{scripted.url}/v1"
model = "scripted"
locality = "local"

[routes.summarize]
use = ["scripted"]
"""
    )
    env = {"DESKPILOT_RETAIN_INPUTS": "true", "DESKPILOT_REVIEW_THRESHOLD": "1.0"}
    return started(server_factory(env=env))


def assert_fits(pane: Pane) -> None:
    """Nothing wider than the pane: no sideways scrolling."""
    width = pane.page.evaluate("document.documentElement.scrollWidth")
    viewport = pane.page.evaluate("window.innerWidth")
    assert width <= viewport, f"the pane scrolls sideways: {width} px wide in {viewport} px"


def test_a_summary_shows_what_is_quoted_what_was_removed_and_each_sentences_source(
    pane_factory: PaneFactory, server: ServerProcess
) -> None:
    pane = open_outlook(pane_factory, server)
    page = pane.page
    wait_idle(server)
    summarize_button(pane).click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done")
    with server.client() as client:
        run = client.get(f"/v1/runs/{pane.run_id()}").json()
    faithful = run["validation"]["faithful"]

    # The checked sentences replace what the model wrote, as the server's check (in lineage) left them: the
    # supported sentence in the model's words, the wrong day replaced by the email's sentence, Marco gone.
    sentences = page.get_by_test_id("grounded-sentence")
    assert [s["kind"] for s in faithful["sentences"]] == ["generated", "quoted"], faithful
    assert [d["replaced_by"] is None for d in faithful["dropped"]] == [False, True], faithful
    expect(sentences).to_have_count(2)
    expect(sentences.nth(0)).to_have_attribute("data-kind", "generated")
    expect(sentences.nth(0)).to_have_text(SUMMARY.split(". ")[0] + ".")
    expect(sentences.nth(1)).to_have_attribute("data-kind", "quoted")
    expect(sentences.nth(1)).to_have_text("The board meeting moved to Thursday 10 am.quoted")
    assert "Marco" not in pane.output() and "Friday" not in pane.output()

    # A quote looks different from the model's own words: italic, a left border, the "quoted" marker.
    quoted = page.locator('[data-testid="grounded-sentence"][data-kind="quoted"]').first
    generated = page.locator('[data-testid="grounded-sentence"][data-kind="generated"]').first
    expect(quoted.get_by_test_id("quoted-marker")).to_have_text("quoted")
    expect(generated.get_by_test_id("quoted-marker")).to_have_count(0)
    assert quoted.evaluate("e => getComputedStyle(e).fontStyle") == "italic"
    assert generated.evaluate("e => getComputedStyle(e).fontStyle") == "normal"
    assert quoted.evaluate("e => parseFloat(getComputedStyle(e).borderLeftWidth)") >= 2
    expect(page.get_by_test_id("grounded-removed")).to_have_text(
        "1 sentence removed: not supported by the email; 1 replaced by a quote of the email"
    )
    assert_fits(pane)
    pane.shot("trust-summary-grounded")

    # A click shows the source sentence of the model's own words; Enter does the same for the quote.
    generated.click()
    expect(generated).to_have_attribute("aria-expanded", "true")
    source = page.get_by_test_id("grounded-source")
    expect(source).to_have_count(1)
    expect(source).to_have_text(
        "From the email: “I need the Q3 sales figures and the churn analysis from your team by Tuesday "
        "evening so that finance can check them on Wednesday.”"
    )
    quoted.focus()
    page.keyboard.press("Enter")
    expect(source).to_have_count(2)
    generated.click()
    expect(source).to_have_count(1)
    assert_fits(pane)
    pane.shot("trust-summary-source")
    assert pane.errors == []

"""Answers people can trust, in the pane (issue 15), end to end: real headless Chromium at Office's
narrowest pane (320 px), the real server (`deskpilot serve`, its faithfulness check over the search
model), and for summaries a scripted OpenAI-compatible model on 127.0.0.1, so what the model "wrote" is
known: one supported sentence, one with a wrong day (the check quotes the source sentence it paraphrases)
and one about a person the email never names (removed).

Screenshots (test-artifacts/taskpane/): trust-summary-grounded.png, trust-summary-source.png,
trust-review-wide.png, trust-review-narrow.png, trust-draft-subject.png, trust-ask-grounded.png,
trust-tabs-outlook-320.png, trust-tabs-word-320.png.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import ServerProcess
from playwright.sync_api import expect

from .conftest import EMAIL_BODY, Pane, PaneFactory
from .test_taskpane_e2e import open_outlook, started, summarize_button, wait_idle

pytestmark = [pytest.mark.model, pytest.mark.e2e]

SUMMARY = (
    "Carol needs the Q3 sales figures and the churn analysis from Bob's team by Tuesday evening. "
    "The board meeting moved to Friday 10 am. Marco will present the plan to the board."
)
HEADLINE = "Q3 figures and churn analysis due Tuesday"
# The answer the issue saw: invented companies and a notice period the cited passage does not give.
ANSWER = "Contoso and Globex may end the agreement with 30 days notice [1]."


class ScriptedModel:
    """An OpenAI-compatible chat server on 127.0.0.1 that streams a fixed answer: the headline for the
    subject-line prompt, the answer for the question about terminating, else the summary. Every request
    body is kept."""

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
                text = HEADLINE if "subject line" in prompt else ANSWER if "terminate" in prompt else SUMMARY
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
    """Summaries and answers go to the scripted model; everything else to the embedded one. Inputs are
    kept (the review test uses its own server, `review_server`, with the default: not kept)."""
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

[routes.ask]
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


INVOICES = [
    "Hello,\n\nplease find invoice INV-2041 from Contoso Ltd, 1 Main Street, Dublin. Issued 3 November 2026, "
    "due 3 December 2026. Consulting 1,000.00 EUR, VAT 230.00 EUR, total 1,230.00 EUR.\n\nContoso Billing",
    "Invoice FB-778 from Fabrikam Inc, 9 Harbour Road, Cork. Date 12 November 2026. Design work 400.00 EUR, "
    "VAT 92.00 EUR, total 492.00 EUR, payable within 30 days.",
]


@pytest.fixture
def review_server(server_factory: type[ServerProcess], app_home: Path) -> ServerProcess:
    """The embedded model with the default `retain_inputs` (off): a review shows the source it carries
    while pending, not one from the run's lineage record. Every result goes to review (threshold 1.0)."""
    return started(server_factory(env={"DESKPILOT_REVIEW_THRESHOLD": "1.0"}))


def queue_reviews(server: ServerProcess) -> list[dict[str, Any]]:
    """Two invoices extracted by the embedded model; every result goes to review (threshold 1.0)."""
    with server.client() as client:
        for text in INVOICES:
            answer = client.post("/v1/extract", json={"schema": "invoice", "text": text}, timeout=240)
            assert answer.status_code == 200 and "event: result" in answer.text, answer.text[-2000:]
        reviews = client.get("/v1/reviews", params={"status": "pending"}).json()["reviews"]
    assert len(reviews) == 2, reviews
    return list(reviews)


def box(locator: Any) -> dict[str, float]:
    found = locator.bounding_box()
    assert found is not None, locator
    return dict(found)


def test_a_review_opens_prefilled_beside_its_source_and_is_decided_from_the_keyboard(
    pane_factory: PaneFactory, review_server: ServerProcess
) -> None:
    server = review_server
    queued = queue_reviews(server)
    with server.client() as client:
        for review in queued:  # the runs' records keep no input; the pending reviews carry their text
            assert client.get(f"/v1/runs/{review['runId']}").json()["input"] is None
            assert review["sourceText"].strip() in [t.strip() for t in INVOICES], review

    # Wider than 480 px: the fields and the source side by side.
    wide = pane_factory(server, width=640).open("outlook")
    wide.page.get_by_role("tab", name="Review").click()
    expect(wide.page.get_by_test_id("review-item")).to_have_count(2)
    card = wide.page.get_by_test_id("review-item").first
    source = card.get_by_test_id("review-source")
    expect(source).to_be_visible()
    fields = card.get_by_role("textbox").first
    assert box(source)["x"] >= box(fields)["x"] + box(fields)["width"], "source is not beside the fields"
    assert_fits(wide)
    wide.shot("trust-review-wide")

    # At 320 px: stacked, the source below the fields; every field prefilled with what was proposed.
    pane = pane_factory(server).open("outlook")
    page = pane.page
    expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
    page.get_by_role("tab", name="Review").click()
    items = page.get_by_test_id("review-item")
    expect(items).to_have_count(2)
    first, second = items.nth(0), items.nth(1)
    by_id = {r["id"]: r for r in queued}
    review = by_id[first.get_attribute("data-review-id") or ""]
    assert first.get_by_test_id("review-source").inner_text().strip() in [t.strip() for t in INVOICES]
    number = first.get_by_label("Invoice number", exact=True)
    expect(number).to_have_value(review["data"]["invoiceNumber"] or "")
    assert box(first.get_by_test_id("review-source"))["y"] >= box(number)["y"] + box(number)["height"]
    assert_fits(pane)
    expect(first).to_have_attribute("aria-current", "true")
    pane.shot("trust-review-narrow")

    # J and K move between the items; E focuses the current item's first field.
    page.keyboard.press("j")
    expect(second).to_have_attribute("aria-current", "true")
    expect(first).not_to_have_attribute("aria-current", "true")
    page.keyboard.press("k")
    expect(first).to_have_attribute("aria-current", "true")
    page.keyboard.press("e")
    first_field = first.get_by_role("textbox").first
    expect(first_field).to_be_focused()

    # A correction, then Enter: saved as an edit of that field only, with when the review was opened.
    number.fill("INV-CORRECTED-1")
    expect(first.get_by_role("button", name="Save corrections")).to_be_visible()
    with page.expect_response(lambda r: r.request.method == "POST" and "/v1/reviews/" in r.url) as response:
        number.press("Enter")
    assert response.value.status == 200, response.value.text()
    sent: dict[str, Any] = response.value.request.post_data_json or {}
    assert sent["decision"] == "edit" and sent["fields"] == {"invoiceNumber": "INV-CORRECTED-1"}, sent
    assert sent["openedAt"].endswith("Z"), sent
    expect(page.get_by_text("Saved your corrections.")).to_be_visible()
    expect(items).to_have_count(1)

    # The other item (focus went back to the page with the decided card): Enter accepts it as proposed.
    with page.expect_response(lambda r: r.request.method == "POST" and "/v1/reviews/" in r.url) as response:
        page.keyboard.press("Enter")
    accepted: dict[str, Any] = response.value.request.post_data_json or {}
    assert accepted.get("decision") == "accept", accepted
    # Opened when J first made it the current item, after the first item was opened with the queue.
    assert accepted["openedAt"] > sent["openedAt"], (accepted, sent)
    expect(page.get_by_text("Nothing to review.")).to_be_visible()

    with server.client() as client:
        groups = client.get("/v1/metrics/quality").json()["groups"]
    (group,) = [g for g in groups if g["task"] == "extract:invoice"]
    assert group["reviewsTimed"] == 2 and group["medianReviewSeconds"] is not None, group
    with server.client() as client:  # decided: the text is no longer kept with the items
        decided = [
            r
            for status in ("edited", "accepted")
            for r in client.get("/v1/reviews", params={"status": status}).json()["reviews"]
        ]
    assert [r["sourceText"] for r in decided] == [None, None], decided
    assert pane.errors == [] and wide.errors == []


def test_the_draft_reply_offers_the_headline_summary_as_its_subject(
    pane_factory: PaneFactory, server: ServerProcess, scripted: ScriptedModel
) -> None:
    # Read mode: the suggestion fills the subject field (Outlook's reply form keeps its own subject).
    pane = open_outlook(pane_factory, server)
    page = pane.page
    wait_idle(server)
    subject = page.get_by_test_id("draft-subject")
    expect(subject).to_have_value("")
    page.get_by_role("button", name="Suggest subject").click()
    expect(subject).to_have_value(HEADLINE)  # supported by the email, so the model's own line
    (asked,) = [b for b in scripted.bodies if "subject line" in str(b["messages"])]
    assert "Q3 sales figures" in str(asked["messages"])  # the headline of this message
    expect(page.get_by_test_id("run")).to_have_count(0)  # the main answer area is left alone
    assert_fits(pane)
    subject.scroll_into_view_if_needed()
    pane.shot("trust-draft-subject")

    # Compose mode: the suggestion becomes the message's subject.
    draft = {"to": [["Carol Diaz", "carol@example.com"]], "body": EMAIL_BODY, "mode": "compose"}
    compose = pane_factory(server).open("outlook", item=draft)
    expect(compose.page.get_by_test_id("server-badge")).to_have_text("Ready")
    compose.page.get_by_role("button", name="Suggest subject").click()
    expect(compose.page.get_by_test_id("draft-subject")).to_have_value(HEADLINE)
    compose.page.get_by_role("button", name="Use as subject").click()
    expect(compose.page.get_by_text("Subject set.")).to_be_visible()
    assert ["subject.setAsync", HEADLINE] in compose.office_calls()
    assert pane.errors == [] and compose.errors == []


@pytest.mark.parametrize(("host", "task_tab"), [("outlook", "Mail"), ("word", "Document")])
def test_every_tab_fits_and_is_clickable_at_320_px(
    pane_factory: PaneFactory, server: ServerProcess, host: str, task_tab: str
) -> None:
    pane = pane_factory(server, width=320).open(host)  # type: ignore[arg-type]  # a manifest host
    page = pane.page
    expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
    tablist = page.get_by_role("tablist", name="Views")
    tabs = tablist.get_by_role("tab")
    expect(tabs).to_have_count(5)
    names = [task_tab, "Review", "Actions", "Status", "Settings"]
    bar = box(tablist)
    for name in names:
        tab = tablist.get_by_role("tab", name=name, exact=True)
        edges = box(tab)
        assert edges["x"] >= bar["x"] and edges["x"] + edges["width"] <= min(bar["x"] + bar["width"], 320), (
            f"{host}: the {name} tab is cut off: {edges} in {bar}"
        )
        # Nothing covers it: the point at its centre is the tab (or inside it).
        centre = (edges["x"] + edges["width"] / 2, edges["y"] + edges["height"] / 2)
        on_top = tab.evaluate(
            "(tab, [x, y]) => { const e = document.elementFromPoint(x, y); return !!e && tab.contains(e); }",
            list(centre),
        )
        assert on_top, f"{host}: something covers the {name} tab at its centre"
        tab.click()
        expect(tab).to_have_attribute("aria-selected", "true")
    overflow = tablist.evaluate("e => e.scrollWidth - e.clientWidth")
    assert overflow <= 0, f"{host}: the tab bar scrolls sideways by {overflow} px"
    assert_fits(pane)
    tablist.get_by_role("tab", name=task_tab, exact=True).click()
    pane.shot(f"trust-tabs-{host}-320")
    assert pane.errors == []


def test_an_unsupported_answer_is_replaced_by_quoted_cited_passage_sentences(
    pane_factory: PaneFactory, server: ServerProcess, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "supply-agreement.txt").write_text(
        "Supply Agreement between Contoso Ltd and Fabrikam Inc. The agreement runs for two years from "
        "1 January 2027. Either party may terminate it by giving 90 days written notice. Payment is due "
        "30 days after the invoice date. The agreement is governed by the laws of Ireland.\n"
    )
    (docs / "picnic.txt").write_text("The company picnic takes place at Riverside Park on 14 June.\n")
    with server.client() as client:
        assert client.post("/v1/index", json={"paths": [str(docs)]}).status_code == 202
        deadline = time.monotonic() + 180
        while (status := client.get("/v1/index/status").json())["documents"] < 2 or status["indexing"]:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)

    pane = pane_factory(server).open("word", document={"body": "Notes.", "selection": ""})
    page = pane.page
    expect(page.get_by_test_id("index-summary")).to_contain_text("Searches 2 documents")
    page.get_by_label("Question").fill("How much notice is needed to terminate the supply agreement?")
    page.get_by_role("button", name="Ask").click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done")
    # The invented answer is gone; the passage's own sentence stands in its place, quoted and cited.
    assert "Globex" not in pane.output() and "30 days notice" not in pane.output()
    sentence = page.get_by_test_id("grounded-sentence")
    expect(sentence).to_have_count(1)
    expect(sentence).to_have_attribute("data-kind", "quoted")
    expect(sentence).to_contain_text("Either party may terminate it by giving 90 days written notice.")
    removed = page.get_by_test_id("grounded-removed")
    expect(removed).to_have_text("1 replaced by a quote of the cited passages")
    cite = sentence.get_by_role("button", name="Source 1")
    expect(cite).to_have_text("[1]")
    expect(page.get_by_test_id("sources").locator("li").first).to_contain_text("supply-agreement")

    # The citation still jumps to the source; a click on the sentence shows the passage sentence.
    cite.click()
    expect(page.locator("#source-1")).to_be_focused()
    sentence.click(position={"x": 12, "y": 10})  # on its first word, not on the citation
    expect(page.get_by_test_id("grounded-source")).to_have_text(
        "From passage [1]: “Either party may terminate it by giving 90 days written notice.”"
    )
    assert_fits(pane)
    pane.shot("trust-ask-grounded")
    assert pane.errors == []

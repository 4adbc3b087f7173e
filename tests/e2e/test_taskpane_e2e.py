"""The task pane end to end: real headless Chromium, the real server, the real embedded model.

Office.js is the test double in office_double.js; everything else is what ships. Screenshots of the main
states are saved under test-artifacts/taskpane/ for a person to look at.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ServerProcess
from playwright.sync_api import Locator, Page, Request, expect

from .conftest import ARTIFACTS, OUTLOOK_ITEM, Pane, PaneFactory

pytestmark = [pytest.mark.model, pytest.mark.e2e]


def started(srv: ServerProcess) -> ServerProcess:
    """Wait for the model and then for the search model, which loads (torch, ~10-30 s on two busy cores)
    right after it and slows everything else in the process meanwhile: the pane is measured as it runs
    once the server has settled, not during its start-up."""
    srv.wait_healthy()
    srv.wait_model()
    deadline = time.monotonic() + 180
    with srv.client() as client:
        while not client.get("/v1/index/status").json().get("embedderReady", True):
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
    return srv


@pytest.fixture
def server(server_factory: type[ServerProcess]) -> ServerProcess:
    return started(server_factory())


def open_outlook(pane_factory: PaneFactory, server: ServerProcess, **kwargs: Any) -> Pane:
    return outlook_ready(pane_factory(server).open("outlook", **kwargs))


def outlook_ready(pane: Pane) -> Pane:
    expect(pane.page.get_by_test_id("server-badge")).to_have_text("Ready")
    expect(pane.page.get_by_test_id("item")).to_contain_text("Q3 numbers for the board pack")
    return pane


def wait_idle(server: ServerProcess, timeout: float = 120.0) -> None:
    """Until the model is free (a cancelled stream frees it within a second; the pane's warm-up of the
    open message takes a second or two, far longer when other work shares the two cores)."""
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while (m := client.get("/v1/models").json())["busy"] or m["waiting"]:
            assert time.monotonic() < deadline, (
                f"model still busy after {timeout} s: {m}\n{server.log()[-3000:]}"
            )
            time.sleep(0.05)


def summarize_button(pane: Pane) -> Locator:
    return pane.page.get_by_role("button", name="Summarize", exact=True)


def test_summary_streams_progressively_then_shows_the_final_text_model_and_lineage(
    pane_factory: PaneFactory, server: ServerProcess
) -> None:
    pane = open_outlook(pane_factory, server)
    pane.shot("outlook-ready")
    wait_idle(server)  # the pane's warm-up of this message (POST /v1/prepare) has finished

    summarize_button(pane).click()
    expect(pane.page.get_by_test_id("run-output")).to_contain_text(re.compile(r"\w"))
    pane.shot("outlook-streaming")
    expect(pane.page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    pane.shot("outlook-summary")

    with server.client() as client:
        run = client.get(f"/v1/runs/{pane.run_id()}").json()
    # The text streamed is exactly what the model produced and lineage recorded; then the faithfulness
    # check's sentences (lineage's validation.faithful) take its place.
    assert run["status"] == "ok" and run["client"] == "outlook" and run["task"] == "summarize"
    written = run["output"].strip()
    assert written and any(text.strip() == written for _, text, _ in pane.texts()), pane.texts()
    assert run["sourceRef"] == "AAMkAGI2-test-item"
    kinds = [s["kind"] for s in run["validation"]["faithful"]["sentences"]]
    shown = pane.page.get_by_test_id("grounded-sentence")
    expect(shown).to_have_count(len(kinds))
    assert [shown.nth(i).get_attribute("data-kind") for i in range(len(kinds))] == kinds

    # Progressive: while streaming, the pane showed at least two partial texts, each growing the last.
    partial = [
        text.strip()
        for _, text, phase in pane.texts()
        if phase == "streaming" and text.strip() and written.startswith(text.strip())
    ]
    partial = [text for text in partial if text != written]
    assert len(partial) >= 2, pane.texts()
    assert all(b.startswith(a) for a, b in pairwise(partial)), partial

    meta = pane.page.get_by_test_id("run-meta")
    expect(meta).to_contain_text("SmolLM2-135M-Instruct-Q8_0")
    expect(meta).to_contain_text("first word")
    assert pane.errors == []


def test_cancel_stops_the_stream_and_frees_the_model(
    pane_factory: PaneFactory, server: ServerProcess
) -> None:
    pane = open_outlook(pane_factory, server)
    wait_idle(server)
    page = pane.page
    page.get_by_label("Length").select_option("long")
    page.get_by_label("What to say (optional)").fill("Answer every point in detail, one paragraph each.")
    page.get_by_role("button", name="Draft reply").click()
    expect(page.get_by_test_id("run-output")).to_contain_text(re.compile(r"\w+\W+\w+"))
    page.get_by_test_id("cancel").click()
    cancelled_at = time.monotonic()
    wait_idle(server, timeout=5.0)  # closing the stream stopped the generation on the server
    freed = time.monotonic() - cancelled_at

    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "cancelled")
    kept = pane.output()
    time.sleep(0.5)
    assert pane.output() == kept, "text kept arriving after Cancel"
    expect(page.get_by_role("button", name="Open in reply")).to_have_count(0)
    pane.shot("outlook-cancelled")
    with server.client() as client:
        run = client.get(f"/v1/runs/{pane.run_id()}").json()
    assert run["status"] == "cancelled" and run["task"] == "draft_reply"
    assert freed < 2.0, freed


def test_draft_reply_opens_in_outlooks_reply_form(pane_factory: PaneFactory, server: ServerProcess) -> None:
    pane = open_outlook(pane_factory, server)
    page = pane.page
    page.get_by_label("Tone").select_option("formal")
    page.get_by_label("Length").select_option("short")
    page.get_by_role("button", name="Draft reply").click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    pane.shot("outlook-draft-reply")
    draft = pane.output().strip()
    page.get_by_role("button", name="Open in reply").click()
    calls = [c for c in pane.office_calls() if c[0] == "displayReplyForm"]
    assert len(calls) == 1
    # The draft went in as HTML: escaped, its paragraphs kept.
    as_text = re.sub(r"<br>", "\n", re.sub(r"</p><p>", "\n\n", calls[0][1]))
    assert html.unescape(re.sub(r"</?p>", "", as_text)) == draft


@contextmanager
def model_held(server: ServerProcess, streams: int) -> Iterator[None]:
    """Keep the model busy with `streams` long generations from another client until the block ends."""
    stop = threading.Event()
    body = {
        "email": {"body": OUTLOOK_ITEM["body"], "subject": "hold"},
        "length": "long",
        "instructions": "List every point in great detail.",
    }

    def hold() -> None:
        with server.client() as client, client.stream("POST", "/v1/draft-reply", json=body) as r:
            for _ in r.iter_raw():
                if stop.is_set():
                    return

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(streams)]
    for t in threads:
        t.start()
        time.sleep(0.2)
    with server.client() as client:
        deadline = time.monotonic() + 10
        while not ((m := client.get("/v1/models").json())["busy"] and m["waiting"] == streams - 1):
            assert time.monotonic() < deadline, m
            time.sleep(0.05)
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(30)


def test_a_busy_model_shows_429_with_retry_after_and_retry_works(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    server = started(server_factory(env={"DESKPILOT_MAX_QUEUE": "1"}))
    pane = open_outlook(pane_factory, server)
    wait_idle(server)
    page = pane.page
    with model_held(server, streams=2):  # one generating, one waiting: the line is full
        with page.expect_response(lambda r: r.url.endswith("/v1/summarize")) as response:
            summarize_button(pane).click()
        assert response.value.status == 429
        retry_after = int(response.value.headers["retry-after"])
        problem = page.get_by_test_id("problem")
        expect(problem).to_have_attribute("data-kind", "busy")
        expect(problem).to_contain_text("The model is busy")
        expect(problem).to_contain_text(re.compile(r"Trying again in \d+ s"))
        expect(page.get_by_role("button", name="Retry now")).to_be_visible()
        pane.shot("outlook-busy-429")
        assert retry_after >= 1
    wait_idle(server, timeout=5)
    page.get_by_role("button", name=re.compile("Retry")).click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    assert pane.output().strip()


def test_server_down_says_so_and_how_to_fix_it(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    server = started(server_factory())
    pane = open_outlook(pane_factory, server)
    wait_idle(server)  # the pane's warm-up has finished: the user quits Deskpilot while the pane is open
    server.stop(signal.SIGTERM)
    summarize_button(pane).click()
    problem = pane.page.get_by_test_id("problem").first
    expect(problem).to_have_attribute("data-kind", "unreachable")
    expect(problem).to_contain_text("Can't reach Deskpilot")
    expect(problem).to_contain_text("deskpilot serve")
    expect(problem).to_contain_text("certificate")
    expect(pane.page.get_by_test_id("server-badge")).to_have_text("Not connected")
    pane.shot("outlook-server-down")


# -- the access token ---------------------------------------------------------------------------------------


def api_requests(page: Page) -> list[Request]:
    """Every request the page makes to the server that is not one of the pane's own files, kept as made."""
    seen: list[Request] = []
    page.on("request", lambda r: seen.append(r) if "/taskpane/" not in r.url else None)
    return seen


def replayed(request: Request, *, without: str = "authorization") -> dict[str, str]:
    """The headers `request` went out with (Origin, fetch metadata, content type, ...), less `without`."""
    skip = {without, "host", "content-length", "connection"}
    return {k: v for k, v in request.all_headers().items() if k.lower() not in skip}


def test_the_token_leaves_the_address_every_request_carries_it_and_a_replay_without_it_is_refused(
    pane_factory: PaneFactory, server: ServerProcess
) -> None:
    token = server.token
    assert token
    pane = pane_factory(server)
    requests = api_requests(pane.page)
    outlook_ready(pane.open("outlook"))
    page = pane.page

    # Gone from the address (and so from the history and a copied link), kept for this session only.
    address = page.evaluate("location.href")
    assert "token" not in address and token not in address, address
    assert address.endswith("/taskpane/index.html?host=outlook"), address
    assert page.evaluate("sessionStorage.getItem('deskpilot.token')") == token
    assert page.evaluate("localStorage.getItem('deskpilot.token')") is None

    wait_idle(server)
    summarize_button(pane).click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    assert pane.output().strip()
    pane.shot("outlook-summary-with-token")
    # The lineage record needs the token too: the link shows it through the pane's client.
    run_id = pane.run_id()
    page.get_by_role("link", name="Lineage record").click()
    expect(page.get_by_test_id("lineage-record")).to_contain_text(f'"id": "{run_id}"')
    page.get_by_role("button", name="Close").click()

    # Every call the pane made, JSON and the event stream alike, carried the token.
    calls = [r for r in requests if "/v1/" in r.url]
    paths = {(r.method, r.url.removeprefix(server.base_url).split("?")[0]) for r in calls}
    assert {("GET", "/v1/models"), ("POST", "/v1/summarize")} <= paths, paths
    for r in calls:
        assert r.all_headers().get("authorization") == f"Bearer {token}", (r.method, r.url)
    assert all(r.all_headers().get("authorization") in (None, f"Bearer {token}") for r in requests)

    # The same requests, replayed by another process that has everything but the token: 401.
    summary = next(r for r in calls if r.method == "POST" and r.url.endswith("/v1/summarize"))
    models = next(r for r in calls if r.method == "GET" and r.url.endswith("/v1/models"))
    with httpx.Client(timeout=30) as other:
        refused = other.post(summary.url, content=summary.post_data_buffer, headers=replayed(summary))
        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "unauthorized"
        assert refused.headers["www-authenticate"].lower().startswith("bearer")
        assert other.get(models.url, headers=replayed(models)).status_code == 401
        # ...while the same replay with the token is let in: the token, nothing else, made the difference.
        assert other.get(models.url, headers=replayed(models, without="")).status_code == 200
        forged = other.get(
            models.url, headers={**replayed(models), "Authorization": "Bearer " + "x" * len(token)}
        )
        assert forged.status_code == 401
    assert pane.errors == []


def rotate_token(server: ServerProcess) -> str:
    """`deskpilot token rotate`, as the user runs it, for this server's app data folder."""
    done = subprocess.run(
        [sys.executable, "-m", "deskpilot.server.cli", "token", "rotate"],
        env={**os.environ, "DESKPILOT_HOME": str(server.home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    token = server.token
    assert token
    return token


def banner(pane: Pane) -> Locator:
    return pane.page.get_by_role("region", name="Connection").get_by_test_id("problem")


def test_after_the_token_is_rotated_the_next_action_asks_to_reopen_and_the_pane_stops_calling(
    pane_factory: PaneFactory, server: ServerProcess
) -> None:
    old = server.token
    pane = open_outlook(pane_factory, server)
    page = pane.page
    wait_idle(server)
    new = rotate_token(server)
    assert new != old

    requests = api_requests(page)
    summarize_button(pane).click()
    expect(banner(pane)).to_have_attribute("data-kind", "unauthorized")
    expect(banner(pane)).to_contain_text("Close and reopen Deskpilot")
    expect(banner(pane)).to_contain_text("deskpilot token rotate")
    expect(page.get_by_test_id("server-badge")).to_have_text("Reopen needed")
    run_problem = page.get_by_test_id("run").get_by_test_id("problem")
    expect(run_problem).to_have_attribute("data-kind", "unauthorized")
    # Nothing to retry: only reopening helps.
    expect(page.get_by_role("button", name=re.compile("Retry"))).to_have_count(0)
    pane.shot("outlook-token-rotated")
    # The refused token is dropped from the session: a reload says how to open the pane instead.
    assert page.evaluate("sessionStorage.getItem('deskpilot.token')") is None

    # No loop: after the refused call (the summary, or a status poll just before it), no polling (it ran
    # every 3-20 s), no retry, in any view.
    refused_calls = len(requests)
    assert len([r for r in requests if "/v1/" in r.url]) == 1, [(r.method, r.url) for r in requests]
    page.get_by_role("tab", name="Actions").click()
    page.get_by_role("tab", name="Status").click()
    page.get_by_role("tab", name="Mail").click()
    time.sleep(4)
    assert len(requests) == refused_calls, [(r.method, r.url) for r in requests]
    expect(banner(pane)).to_contain_text("Close and reopen Deskpilot")  # persistent
    with server.client() as client:
        assert client.get("/v1/models").status_code == 200  # the new token works

    # Reopened (Office opens the manifest's URL, which `token rotate` wrote again): it works again.
    reopened = open_outlook(pane_factory, server)
    expect(banner(reopened)).to_have_count(0)
    assert reopened.page.evaluate("sessionStorage.getItem('deskpilot.token')") == new
    assert pane.errors == [] and reopened.errors == []


def test_opened_without_a_token_it_says_how_to_open_it_and_calls_nothing(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    server = server_factory()
    server.wait_healthy()
    pane = pane_factory(server)
    requests = api_requests(pane.page)
    pane.open("outlook", with_token=False)
    page = pane.page
    expect(banner(pane)).to_have_attribute("data-kind", "unauthorized")
    expect(banner(pane)).to_contain_text("Open Deskpilot from Outlook or Word")
    expect(banner(pane)).to_contain_text("deskpilot token show --url")
    expect(page.get_by_test_id("server-badge")).to_have_text("No access")
    expect(page.get_by_test_id("item")).to_contain_text("Q3 numbers for the board pack")
    summarize_button(pane).click()
    expect(page.get_by_test_id("run").get_by_test_id("problem")).to_have_attribute(
        "data-kind", "unauthorized"
    )
    pane.shot("outlook-no-token")
    time.sleep(4)
    assert requests == [], [(r.method, r.url) for r in requests]  # not even /healthz: nothing can work
    assert pane.errors == []


CONTRACT = {
    "body": "This Supply Agreement is made between Contoso Ltd and Fabrikam Inc. "
    "The term is two years from 1 January 2027 and renews for one year unless either party gives "
    "90 days written notice. Payment is due 30 days after invoice.",
    "selection": "The term is two years from 1 January 2027 and renews for one year unless either party "
    "gives 90 days written notice.",
}


def test_word_dark_theme_summarizes_the_selection(pane_factory: PaneFactory, server: ServerProcess) -> None:
    pane = pane_factory(server).open("word", document=CONTRACT, background="#262626")
    page = pane.page
    expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
    expect(page.locator("[data-theme]")).to_have_attribute("data-theme", "dark")
    expect(page.get_by_label("Selection")).to_be_checked()
    summarize_button(pane).click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    with server.client() as client:
        run = client.get(f"/v1/runs/{pane.run_id()}").json()
    assert run["client"] == "word" and run["status"] == "ok"
    assert run["sourceRef"].endswith("Supply agreement.docx")
    pane.shot("word-dark-summary")


def word_document(pane: Pane) -> dict[str, Any]:
    """The pretend Word document (office_double.js): body, selection, tracking mode, tracked changes."""
    return dict(pane.page.evaluate("window.__wordDocument"))


def test_word_rewrites_the_selection_and_inserts_it_as_a_tracked_change(
    pane_factory: PaneFactory, server: ServerProcess
) -> None:
    pane = pane_factory(server)
    requested: list[str] = []
    pane.page.on("request", lambda r: requested.append(r.url))
    pane.open("word", document=CONTRACT)
    page = pane.page
    expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
    expect(page.get_by_label("Selection")).to_be_checked()
    expect(page.get_by_test_id("rewrite-note")).to_have_text(
        "The new text goes in as a tracked change for you to accept or reject."
    )

    page.get_by_label("How").fill("shorter and plainer")
    page.get_by_label("Tone").select_option("formal")
    with page.expect_request(lambda r: r.url.endswith("/v1/rewrite")) as request:
        page.get_by_role("button", name="Rewrite", exact=True).click()
    assert request.value.post_data_json == {
        "text": CONTRACT["selection"],
        "instructions": "shorter and plainer",
        "tone": "formal",
        "client": "word",
        "sourceRef": "C:\\Users\\bob\\Documents\\Supply agreement.docx",
    }
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    with server.client() as client:
        run = client.get(f"/v1/runs/{pane.run_id()}").json()
    assert run["task"] == "rewrite" and run["client"] == "word" and run["status"] == "ok", run
    assert run["sourceRef"].endswith("Supply agreement.docx")
    rewritten = run["output"].strip()
    assert rewritten, run
    assert word_document(pane)["trackedChanges"] == []  # nothing goes into the document by itself
    pane.shot("word-rewrite")

    page.get_by_role("button", name="Insert as tracked change").click()
    expect(page.get_by_text("Inserted as a tracked change")).to_be_visible()
    pane.shot("word-rewrite-tracked")
    # Word holds the rewrite as a tracked change (the old text deleted, the new one added), and the
    # user's tracking mode (off) is back as it was.
    doc = word_document(pane)
    assert doc["trackedChanges"] == [
        {"type": "Deleted", "text": CONTRACT["selection"]},
        {"type": "Added", "text": rewritten},
    ]
    assert doc["mode"] == "Off" and doc["selection"] == rewritten
    assert doc["body"] == CONTRACT["body"].replace(CONTRACT["selection"], rewritten)
    calls = pane.office_calls()
    assert [c for c in calls if c[0] == "insertText"] == [["insertText", rewritten, "Replace", "TrackAll"]]
    assert [c[1] for c in calls if c[0] == "changeTrackingMode"] == ["TrackAll", "Off"]
    # The pane ships inside this server: it never asks which endpoints the server has.
    assert not [u for u in requested if "/openapi" in u], requested
    assert pane.errors == []


def test_status_review_and_settings_views(pane_factory: PaneFactory, server: ServerProcess) -> None:
    pane = open_outlook(pane_factory, server)
    page = pane.page
    page.get_by_role("tab", name="Status").click()
    status = page.get_by_test_id("status")
    expect(status).to_contain_text("SmolLM2-135M-Instruct-Q8_0")
    expect(status).to_contain_text("ready")
    expect(status).to_contain_text("llama.cpp")
    expect(status).to_contain_text("0 documents")  # every server has an index to report
    pane.shot("status")
    page.get_by_role("tab", name="Review").click()
    expect(page.get_by_text("Nothing to review.")).to_be_visible()  # a new server's queue is empty
    pane.shot("review")
    page.get_by_role("tab", name="Settings").click()
    page.get_by_label("Summary length").select_option("2")
    page.reload()
    page.get_by_role("tab", name="Settings").click()
    expect(page.get_by_label("Summary length")).to_have_value("2")  # kept across reloads
    pane.shot("settings")


def test_the_user_adds_and_removes_folders_to_index_in_settings(
    pane_factory: PaneFactory, server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    projects = tmp_path_factory.mktemp("projects")
    pane = open_outlook(pane_factory, server)
    page = pane.page
    page.get_by_role("tab", name="Settings").click()
    folders = page.get_by_test_id("folders")
    expect(folders.get_by_test_id("folder")).to_have_count(1)  # the settings' root, IT's
    expect(folders.get_by_test_id("folder").first).to_contain_text("Set by your IT department")
    with server.client() as client:
        assert client.post("/v1/index", json={"paths": [str(projects)]}).status_code == 403
    # A whole drive is refused, with the server's reason, and nothing is added.
    page.get_by_test_id("folder-input").fill("/")
    page.get_by_role("button", name="Add folder").click()
    expect(folders.get_by_test_id("problem")).to_contain_text("whole drive")
    expect(folders.get_by_test_id("folder")).to_have_count(1)
    page.get_by_test_id("folder-input").fill(str(projects))
    page.get_by_role("button", name="Add folder").click()
    added = folders.locator('[data-testid="folder"][data-source="added"]')
    expect(added).to_contain_text(str(projects.resolve()))
    expect(page.get_by_test_id("folder-input")).to_have_value("")
    pane.shot("settings-folders")
    with server.client() as client:
        assert client.post("/v1/index", json={"paths": [str(projects)]}).status_code == 202
    added.get_by_role("button", name=f"Remove {projects.resolve()}").click()
    expect(added).to_have_count(0)
    with server.client() as client:
        roots = client.get("/v1/index/roots").json()["roots"]
        assert [r["source"] for r in roots] == ["settings"]


def test_keyboard_only_summarize_and_escape_cancels(pane_factory: PaneFactory, server: ServerProcess) -> None:
    pane = open_outlook(pane_factory, server)
    wait_idle(server)
    page = pane.page
    summarize_button(pane).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", re.compile("waiting|streaming"))
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "cancelled")
    # Every control can be reached with Tab and shows where focus is.
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement && document.activeElement.tagName")
    assert focused in {"BUTTON", "SELECT", "TEXTAREA", "A", "INPUT"}


def _first_word_ms(pane: Pane) -> tuple[float, float]:
    """(click to first visible word, click to done) of the pane's latest run, in ms, measured in the page."""
    click = pane.clicks()[-1]
    after = [(t, text, phase) for t, text, phase in pane.texts() if t >= click]
    first = next(t for t, text, _ in after if re.search(r"\w", text))
    done = next(t for t, _, phase in after if phase == "done")
    return first - click, done - click


@pytest.mark.timeout(900)  # ten summaries on two shared cores
def test_click_to_first_visible_word_median_of_5(pane_factory: PaneFactory, server: ServerProcess) -> None:
    # As a user meets it: the message is open (the pane warmed the model up for it), then Summarize. A new
    # message each time: a message summarized before is answered from the result cache, all at once.
    warm: list[tuple[float, float]] = []
    for i in range(5):
        item = {
            **OUTLOOK_ITEM,
            "subject": f"Invoice {i}",
            "body": f"Invoice {2000 + i}: {OUTLOOK_ITEM['body']}",
        }
        pane = pane_factory(server)
        pane.open("outlook", item=item)
        expect(pane.page.get_by_test_id("server-badge")).to_have_text("Ready")
        wait_idle(server)
        summarize_button(pane).click()
        expect(pane.page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
        warm.append(_first_word_ms(pane))
    # A new message each time with the warm-up switched off: the prompt is read after the click.
    cold: list[tuple[float, float]] = []
    for i in range(5):
        item = {**OUTLOOK_ITEM, "subject": f"Order {i}", "body": f"Order {1000 + i}: {OUTLOOK_ITEM['body']}"}
        pane = pane_factory(server)
        pane.open("outlook", item=item, prefs={"warmUp": False})
        expect(pane.page.get_by_test_id("server-badge")).to_have_text("Ready")
        wait_idle(server)
        summarize_button(pane).click()
        expect(pane.page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
        cold.append(_first_word_ms(pane))

    result = {
        name: {
            "first_word_ms": [round(f) for f, _ in runs],
            "done_ms": [round(d) for _, d in runs],
            "median_first_word_ms": round(statistics.median(f for f, _ in runs)),
        }
        for name, runs in (("warmed_up", warm), ("cold", cold))
    }
    (ARTIFACTS / "first-word.json").write_text(json.dumps(result, indent=2))
    warm_ms, cold_ms = result["warmed_up"], result["cold"]
    print(
        f"\nclick to first visible word, median of 5: {warm_ms['median_first_word_ms']} ms warmed up "
        f"(runs {warm_ms['first_word_ms']}), {cold_ms['median_first_word_ms']} ms cold "
        f"(runs {cold_ms['first_word_ms']})"
    )
    # The first word shows well before the summary is complete: streamed, not delivered at the end.
    for first, done in warm + cold:
        assert first < done - 100, (first, done)


def test_word_asks_the_indexed_documents_and_lists_the_cited_sources(
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
    (docs / "travel-policy.txt").write_text(
        "Economy class for flights under six hours; hotels up to 180 euros.\n"
    )
    with server.client() as client:
        assert client.post("/v1/index", json={"paths": [str(docs)]}).status_code == 202
        deadline = time.monotonic() + 180
        while (status := client.get("/v1/index/status").json())["documents"] < 3 or status["indexing"]:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)

    pane = pane_factory(server).open("word", document={"body": "Notes.", "selection": ""})
    page = pane.page
    expect(page.get_by_test_id("index-summary")).to_contain_text("Searches 3 documents")
    page.get_by_label("Question").fill("How much notice is needed to terminate the supply agreement?")
    page.get_by_role("button", name="Ask").click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    sources = page.get_by_test_id("sources")
    expect(sources.locator("li").first).to_contain_text("supply-agreement")
    expect(sources.locator("li").first).to_contain_text("90 days written notice")
    pane.shot("word-ask-sources")
    with server.client() as client:
        run = client.get(f"/v1/runs/{pane.run_id()}").json()
    assert run["task"] == "ask" and run["client"] == "word" and run["retrievedChunks"]


INVOICE_ITEM = {
    "subject": "Invoice INV-2041",
    "from": ["Contoso Billing", "billing@contoso.com"],
    "to": [["Bob Lee", "bob@example.com"]],
    "body": "Hello,\n\nplease find invoice INV-2041 from Contoso Ltd, 1 Main Street, Dublin. Issued "
    "3 November 2026, due 3 December 2026. Consulting 1,000.00 EUR, VAT 230.00 EUR, total 1,230.00 EUR."
    "\n\nContoso Billing",
}


def test_invoice_fields_stream_progress_then_a_result_and_low_confidence_goes_to_review(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    # Every result below full confidence goes to review, so the queue is never empty by chance.
    server = started(server_factory(env={"DESKPILOT_REVIEW_THRESHOLD": "1.0"}))
    pane = pane_factory(server).open("outlook", item=INVOICE_ITEM)  # the Outlook user decides: Bob Lee
    page = pane.page
    expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
    page.get_by_role("button", name="Invoice fields").click()
    expect(page.get_by_test_id("run-status")).to_contain_text(re.compile("Reading|Checking"))
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    result = page.get_by_test_id("result")
    expect(result).to_contain_text("Invoice number")
    expect(result).to_contain_text("Total")
    expect(page.get_by_test_id("sent-to-review")).to_be_visible()
    pane.shot("outlook-invoice-fields")
    with server.client() as client:
        run = client.get(f"/v1/runs/{pane.run_id()}").json()
        assert run["task"] == "extract:invoice" and run["client"] == "outlook" and run["status"] == "ok"

    page.get_by_role("button", name="Triage label").click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    with server.client() as client:
        triage = client.get(f"/v1/runs/{pane.run_id()}").json()
        pending = client.get("/v1/reviews", params={"status": "pending"}).json()["reviews"]
    assert triage["task"] == "classify"
    expect(result).to_contain_text(re.compile(r"\d+%"))
    expect(page.get_by_test_id("sent-to-review")).to_be_visible()
    pane.shot("outlook-triage")

    # Both results are in the pane's review queue; accepting one records the decision with the reviewer,
    # the Outlook user (office_double.js): name and address.
    assert len(pending) == 2, pending
    page.get_by_role("tab", name="Review").click()
    items = page.get_by_test_id("review-item")
    expect(items).to_have_count(2)
    pane.shot("review-queue")
    items.first.get_by_role("button", name="Accept").click()
    expect(items).to_have_count(1)
    with server.client() as client:
        decided = client.get(f"/v1/reviews/{pending[0]['id']}").json()
    assert decided["status"] == "accepted" and decided["decision"]["reviewer"] == "Bob Lee"
    assert decided["decision"]["reviewerAddress"] == "bob@example.com"


def test_a_reviewer_corrects_a_queued_result_in_the_pane_and_the_server_records_it(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    # Every result below full confidence goes to review: the extraction below is queued for a person.
    server = started(server_factory(env={"DESKPILOT_REVIEW_THRESHOLD": "1.0"}))
    with server.client() as client:
        extracted = client.post(
            "/v1/extract", json={"schema": "invoice", "text": INVOICE_ITEM["body"]}, timeout=180
        )
        assert extracted.status_code == 200 and "event: result" in extracted.text, extracted.text[-2000:]
        (queued,) = client.get("/v1/reviews", params={"status": "pending"}).json()["reviews"]
    assert queued["task"] == "extract:invoice"
    proposed = queued["data"]["invoiceNumber"]

    pane = pane_factory(server).open("outlook", item=INVOICE_ITEM)  # the Outlook user decides: Bob Lee
    page = pane.page
    expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
    page.get_by_role("tab", name="Review").click()
    item = page.get_by_test_id("review-item")
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-review-id", queued["id"])
    item.get_by_role("button", name="Edit").click()
    number = item.get_by_label("Invoice number")
    expect(number).to_have_value(proposed or "")
    number.fill("INV-2041-01")  # the number as printed on the invoice itself
    pane.shot("review-editing")
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(f"/v1/reviews/{queued['id']}")
    ) as response:
        item.get_by_role("button", name="Save").click()
    assert response.value.status == 200, response.value.text()
    expect(page.get_by_text("Saved your corrections.")).to_be_visible()
    expect(item).to_have_count(0)
    expect(page.get_by_text("Nothing to review.")).to_be_visible()
    pane.shot("review-edited")

    # The decision is on record: who, what changed (only the field the reviewer touched), the result
    # kept, chained in the lineage store; the override rate counts it.
    with server.client() as client:
        decided = client.get(f"/v1/reviews/{queued['id']}").json()
        run = client.get(f"/v1/runs/{queued['runId']}").json()
        quality = client.get("/v1/metrics/quality").json()["groups"]
    decision = decided["decision"]
    assert decided["status"] == "edited", decided
    assert decision["decision"] == "edit" and decision["reviewer"] == "Bob Lee"
    assert decision["reviewerAddress"] == "bob@example.com"
    assert decision["changes"] == [{"path": "invoiceNumber", "before": proposed, "after": "INV-2041-01"}]
    assert decision["final"] == {**queued["data"], "invoiceNumber": "INV-2041-01"}
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", decision["hash"]), decision["hash"]
    assert run["task"] == "extract:invoice" and run["hash"]
    (group,) = [g for g in quality if g["task"] == "extract:invoice"]
    assert (group["reviewed"], group["edited"], group["fieldsChanged"]) == (1, 1, 1), group
    assert pane.errors == []


def test_offline_says_so_and_the_local_model_keeps_working(
    pane_factory: PaneFactory, server: ServerProcess
) -> None:
    pane = open_outlook(pane_factory, server)
    page = pane.page
    # Offline means no internet, not no localhost: the browser says so, loopback still answers.
    page.evaluate("""() => {
        Object.defineProperty(Navigator.prototype, "onLine", { get: () => false, configurable: true });
        window.dispatchEvent(new Event("offline"));
    }""")
    expect(page.get_by_test_id("offline")).to_contain_text("You're offline")
    expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
    summarize_button(pane).click()
    expect(page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=120_000)
    pane.shot("outlook-offline")

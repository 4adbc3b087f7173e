"""The real server (`deskpilot serve` in a child process) with the real embedded model, over real HTTP."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from deskpilot.inference.llama import requantized_embedded_model

pytestmark = [pytest.mark.process, pytest.mark.model]

EMAIL = {
    "from": "Carol Diaz <carol@example.com>",
    "subject": "Q3 numbers for the board pack",
    "body": (
        "Hi Bob,\n\nThe board meeting moved to Thursday 10 am. I need the Q3 sales figures and the churn "
        "analysis from your team by Tuesday evening so that finance can check them on Wednesday. Please "
        "also confirm whether the Lisbon office numbers are final.\n\nThanks,\nCarol"
    ),
}
TEMPLATES = Path(__file__).resolve().parents[1] / "inference" / "templates"


def events_of(client: httpx.Client, path: str, body: dict) -> list[tuple[str, dict, float]]:
    """(event, data, arrival time) for every event of one stream."""
    out = []
    with connect_sse(client, "POST", path, json=body) as source:
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            out.append((sse.event, sse.json(), time.perf_counter()))
    return out


def audit(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deskpilot.server.cli", "audit", *args],
        capture_output=True,
        text=True,
        env={"DESKPILOT_HOME": str(home), "PATH": ""},
        timeout=60,
    )


@pytest.fixture
def server(server_factory):  # type: ignore[no-untyped-def]
    srv = server_factory()
    srv.wait_healthy()
    srv.wait_model()
    return srv


def test_healthz_answers_within_3_seconds_of_start_over_https(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(https=True)
    assert srv.wait_healthy(timeout=3.0) < 3.0
    # The certificate was generated in the app data folder and verifies for localhost and 127.0.0.1.
    cert = srv.home / "tls" / "localhost.pem"
    context = ssl.create_default_context(cafile=str(cert))
    for host in ("localhost", "127.0.0.1"):
        r = httpx.get(f"https://{host}:{srv.port}/healthz", verify=context)
        assert r.json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError):  # not trusted without the certificate
        httpx.get(f"https://127.0.0.1:{srv.port}/healthz", verify=True)


def test_summary_streams_from_the_real_model_and_is_in_lineage(server, app_home: Path) -> None:  # type: ignore[no-untyped-def]
    with server.client() as client:
        events = events_of(client, "/v1/summarize", {"email": EMAIL, "client": "outlook"})
        names = [e for e, _, _ in events]
        assert names[0] == "meta" and names[-1] == "done"
        tokens = [(d["text"], t) for e, d, t in events if e == "token"]
        assert len(tokens) > 1
        # Incremental: the first words arrive well before the stream ends, not all in one buffer.
        assert events[-1][2] - tokens[0][1] > 0.05
        text = "".join(t for t, _ in tokens)
        assert text.strip()

        run = client.get(f"/v1/runs/{events[0][1]['runId']}").json()
    converted, folder = requantized_embedded_model(None, threads=1)  # deterministic: the server's bytes
    gguf = hashlib.sha256(converted.read_bytes()).hexdigest()
    folder.cleanup()
    template = hashlib.sha256((TEMPLATES / "summarize.toml").read_bytes()).hexdigest()
    assert run["weightsDigest"] == f"sha256:{gguf}"
    assert run["templateHash"] == f"sha256:{template}" and run["templateId"] == "summarize@v1"
    assert run["modelId"] == "SmolLM2-135M-Instruct-Q8_0" and run["backend"] == "llama.cpp"
    assert run["status"] == "ok" and run["output"] == text and run["client"] == "outlook"
    assert run["tokensOut"] == events[-1][1]["usage"]["completionTokens"] > 1
    assert run["ttftMs"] > 0 and run["totalMs"] >= run["ttftMs"]

    ok = audit(app_home, "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Tamper through plain SQL, as anyone with the file could (dropping the guard triggers first).
    with sqlite3.connect(app_home / "deskpilot.db") as db:
        for (name,) in db.execute("select name from sqlite_master where type='trigger' and tbl_name='runs'"):
            db.execute(f"drop trigger {name}")
        db.execute("update runs set output = ? where id = ?", ['"A nicer summary."', run["id"]])
    tampered = audit(app_home, "verify")
    assert tampered.returncode == 1
    assert run["id"] in tampered.stdout + tampered.stderr


def test_draft_reply_streams_with_tone_and_length(server) -> None:  # type: ignore[no-untyped-def]
    with server.client() as client:
        events = events_of(client, "/v1/draft-reply", {"email": EMAIL, "tone": "formal", "length": "short"})
    assert [e for e, _, _ in events][-1] == "done"
    assert sum(e == "token" for e, _, _ in events) > 1
    assert events[-1][1]["usage"]["completionTokens"] <= 110  # the "short" budget


def test_disconnect_mid_stream_frees_the_model_within_a_second(server) -> None:  # type: ignore[no-untyped-def]
    body = {"email": EMAIL, "length": "long", "instructions": "List every point in detail."}
    with server.client() as client:
        with connect_sse(client, "POST", "/v1/draft-reply", json=body) as source:
            events = source.iter_sse()
            run_id = next(events).json()["runId"]
            for _ in range(3):
                assert next(events).event == "token"
        left = time.perf_counter()  # leaving the block closed the connection
        while client.get("/v1/models").json()["busy"]:
            assert time.perf_counter() - left < 1.0, "the model is still busy a second after the client left"
            time.sleep(0.01)
        freed = time.perf_counter() - left
        # The next request gets the model at once.
        events2 = events_of(
            client, "/v1/summarize", {"text": "Lunch moved to 1 pm on Friday.", "sentences": 1}
        )
        assert events2[-1][0] == "done" and events2[-1][1]["queueMs"] < 100
        run = client.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "cancelled" and freed < 1.0
    assert len(run["output"]) > 0


def test_overload_gets_429_with_retry_after_and_the_rest_complete(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(env={"DESKPILOT_MAX_QUEUE": "1"})
    srv.wait_healthy()
    srv.wait_model()
    results: list[tuple[int, str | None, str | None]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(5)

    def one(i: int) -> None:
        with srv.client() as client:
            barrier.wait()
            body = {"text": f"Request {i}: the quarterly review moved to Monday; bring the updated forecast."}
            with client.stream("POST", "/v1/summarize", json=body) as r:
                text = r.read().decode()
                last = [line for line in text.splitlines() if line.startswith("event:")][-1:] or [None]
                with lock:
                    results.append((r.status_code, r.headers.get("retry-after"), last[0]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    statuses = sorted(code for code, _, _ in results)
    assert statuses == [200, 200, 429, 429, 429], results
    assert all(int(retry) >= 1 for code, retry, _ in results if code == 429)
    assert all(last == "event: done" for code, _, last in results if code == 200)


def test_stopping_with_open_streams_completes_within_seconds(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    srv.wait_healthy()
    srv.wait_model()
    endings: list[str] = []

    def stream() -> None:
        with (
            srv.client() as client,
            connect_sse(client, "POST", "/v1/draft-reply", json={"email": EMAIL, "length": "long"}) as source,
        ):
            endings.append([sse.event for sse in source.iter_sse()][-1])

    threads = [threading.Thread(target=stream) for _ in range(3)]  # one generating, two waiting in line
    for t in threads:
        t.start()
    time.sleep(0.8)
    took = srv.stop(signal.SIGTERM)
    for t in threads:
        t.join(10)
    assert took < 3.0, srv.log()
    # Every stream ended cleanly; those still open (at least the two waiting in line) were told why.
    assert len(endings) == 3 and set(endings) <= {"done", "error"}
    assert endings.count("error") >= 2
    # uvicorn re-raises the signal after a clean shutdown, so the exit status is "terminated by SIGTERM".
    assert srv.proc.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in srv.log()


def test_a_crash_mid_run_leaves_an_interrupted_run(server_factory, app_home: Path) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    srv.wait_healthy()
    srv.wait_model()
    with (
        srv.client() as client,
        connect_sse(client, "POST", "/v1/draft-reply", json={"email": EMAIL, "length": "long"}) as source,
    ):
        run_id = next(source.iter_sse()).json()["runId"]
        srv.stop(signal.SIGKILL)
    again = server_factory()
    again.wait_healthy()
    with again.client() as client:
        run = client.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "interrupted"
    assert audit(app_home, "verify").returncode == 0


def test_prepare_caches_the_prompt_and_gives_way_to_real_requests(server) -> None:  # type: ignore[no-untyped-def]
    body = {"email": EMAIL}
    with server.client() as client:
        prepared = client.post("/v1/prepare", json=body).json()
        events = events_of(client, "/v1/summarize", body)
        prompt_tokens = events[-1][1]["usage"]["promptTokens"]
        # Everything but the last prompt token was evaluated ahead (the last one yields the first logits).
        assert prepared["prepared"] and prepared["cachedTokens"] == prompt_tokens - 1

        # A long prepare stops as soon as a real request queues; the real request is not held up by it.
        long_text = {
            "text": "The supplier confirmed the revised delivery schedule for the spring range. " * 120
        }
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(r=client.post("/v1/prepare", json=long_text)))
        thread.start()
        time.sleep(0.4)
        t0 = time.perf_counter()
        quick = events_of(client, "/v1/summarize", {"text": "Lunch moved to 1 pm.", "sentences": 1})
        waited = quick[-1][1]["queueMs"]
        thread.join(60)
        gave_way = result["r"].json()
        assert gave_way["prepared"] and 0 < gave_way["cachedTokens"] < 1000
        assert waited < 1000, f"the real request waited {waited} ms behind a prepare"
        assert time.perf_counter() - t0 < 20

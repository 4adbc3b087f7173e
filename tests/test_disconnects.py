"""Clients that leave early, against the app under a real uvicorn on 127.0.0.1 (the scripted backend):
whatever moment they leave at, their place in the model's line and their lineage run are given back
at once, without waiting for Python's garbage collector (found by bench/bench_load.py)."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from conftest import bearer, free_port
from uvicorn_thread import UvicornThread, plain_config

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.core.token import read_token
from deskpilot.server.settings import Settings, load_settings

pytestmark = pytest.mark.integration


class LiveServer:
    def __init__(self, settings: Settings, backend: ScriptedBackend) -> None:
        self.settings, self.backend = settings, backend
        self.url = f"http://127.0.0.1:{settings.port}"
        # A torch-free embedder for the index and the summary checks: these tests are about admission.
        index = DocumentIndex(settings.home / "index", embedder=HashEmbedder())
        self.uvicorn = UvicornThread(
            plain_config(create_app(settings, backend=backend, index=index), settings.port)
        )

    def __enter__(self) -> LiveServer:
        self.uvicorn.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uvicorn.stop()

    @property
    def headers(self) -> dict[str, str]:
        """This server's Host, and its token (the app created it when it was built)."""
        return {"Host": f"127.0.0.1:{self.settings.port}", **bearer(read_token(self.settings.token_path))}

    def models(self) -> dict:  # type: ignore[type-arg]
        return httpx.get(f"{self.url}/v1/models", headers=self.headers).json()  # type: ignore[no-any-return]

    def open_runs(self) -> int:
        with closing(sqlite3.connect(self.settings.db_path)) as conn:
            return int(conn.execute("SELECT count(*) FROM open_runs").fetchone()[0])


@pytest.fixture
def live(app_home: Path) -> Iterator[LiveServer]:
    settings = load_settings(home=app_home, https=False, port=free_port(), max_queue=4, worker=False)
    backend = ScriptedBackend([f" w{i}" for i in range(40)], delay=0.005)
    with LiveServer(settings, backend) as server:
        yield server


@pytest.fixture
def no_gc() -> Iterator[None]:
    """What must not be needed: a cyclic collection to run the finalizers of abandoned streams."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _leave_after_headers(live: LiveServer, count: int, at_once: int) -> None:
    async with httpx.AsyncClient(base_url=live.url, headers=live.headers) as client:

        async def one() -> None:
            async with client.stream("POST", "/v1/summarize", json={"text": "Please summarize this."}) as r:
                assert r.status_code in (200, 429)
            # leaving the block closes the connection: the body was never read

        for start in range(0, count, at_once):
            await asyncio.gather(*(one() for _ in range(min(at_once, count - start))))


def _settled(live: LiveServer, timeout: float = 5.0) -> tuple[dict, int]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        models, open_runs = live.models(), live.open_runs()
        if (models["waiting"] == 0 and not models["busy"] and open_runs == 0) or time.monotonic() > deadline:
            return models, open_runs
        time.sleep(0.05)


@pytest.mark.usefixtures("no_gc")
def test_clients_that_leave_after_the_headers_give_their_place_back(live: LiveServer) -> None:
    asyncio.run(_leave_after_headers(live, count=8, at_once=1))
    models, _ = _settled(live)
    assert models["waiting"] == 0 and models["busy"] is False, models
    # The next clients are served, not told the idle model is busy.
    with httpx.Client(base_url=live.url, headers=live.headers) as client:
        for _ in range(live.settings.max_queue + 2):
            r = client.post("/v1/summarize", json={"text": "Still there?"})
            assert r.status_code == 200 and "event: done" in r.text


@pytest.mark.usefixtures("no_gc")
def test_no_run_is_left_open_by_clients_that_leave_while_it_opens(live: LiveServer) -> None:
    asyncio.run(_leave_after_headers(live, count=40, at_once=4))
    models, open_runs = _settled(live)
    assert open_runs == 0, f"{open_runs} run(s) left open in lineage"
    assert models["waiting"] == 0 and models["busy"] is False, models

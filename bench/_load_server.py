"""The server side of bench/bench_load.py: the real app, a scripted backend, plain HTTP, in its own process.

Started by bench_load.py as `python bench/_load_server.py --home DIR [--delay S] [--words N] [--max-queue N]`.
It binds 127.0.0.1 on a free port, prints one line `PORT <n>` on stdout once the socket is bound, and
serves until SIGINT/SIGTERM. Everything is the production `create_app` except:

- the backend is `ScriptedBackend` (`--words` words, `--delay` seconds apart), so a summary streams in about
  `words * delay` seconds with no model and no model CPU; its `requests`/`prepared` lists (kept for unit
  tests) are bounded, so that they do not read as a server leak in the memory figures;
- the document index uses the torch-free `HashEmbedder` (start-up warms the index after the model is
  ready; loading torch would add seconds of GIL-holding import and hundreds of MB to the baseline);
- uvicorn logs warnings only, with no access log (the access log alone costs a core at this rate);
- one extra route, `GET /bench/state`, reports what the load test checks after the load: the model gate
  (waiting, busy), the backend (active, cancelled, streams), lineage runs still open, RSS, asyncio tasks,
  threads and open file descriptors. `?gc=1` runs a full garbage collection first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import resource
import socket
import sqlite3
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from litestar import Litestar, Request, get
from litestar.params import Parameter

from deskpilot.inference import Finished, GenerationRequest, Token
from deskpilot.server.app import create_app
from deskpilot.server.settings import Settings, load_settings

try:  # the package's public name; the module path is the fallback while server/ and inference/ move
    from deskpilot.inference import ScriptedBackend
except ImportError:  # pragma: no cover
    from deskpilot.inference.fake import ScriptedBackend

try:
    from deskpilot.indexes import DocumentIndex, HashEmbedder, index_folder
except ImportError:  # pragma: no cover - the app then builds its default index (torch loads at start-up)
    DocumentIndex = None  # type: ignore[assignment,misc]

SCRIPT = (
    "Ana asks for the Q3 budget numbers by Friday so that finance can close the quarter on time; "
    "she also wants a short note on the travel costs, the two open invoices from Contoso, and whether "
    "the team offsite moves to October as discussed in last week's planning call ."
)
WORDS = SCRIPT.split()


class BenchBackend(ScriptedBackend):
    """`ScriptedBackend` with two changes for a long run. It keeps the last few requests, not all of them
    (a unit-test convenience that would grow by one request per generation and read as a server leak).
    And it counts generations `cut_short`: closed before their `Finished` item. The parent's `cancelled`
    counts every close, and the server closes each stream once it has read `Finished`, so that counter
    also grows with every generation that completed."""

    def __init__(self, words: int, delay: float) -> None:
        script = [w if i == 0 else " " + w for i, w in enumerate((WORDS * (1 + words // len(WORDS)))[:words])]
        super().__init__(script, delay=delay, model_id="bench-scripted")
        self.requests = deque(maxlen=32)  # type: ignore[assignment]
        self.prepared = deque(maxlen=32)  # type: ignore[assignment]
        self.streams = 0
        self.cut_short = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Token | Finished]:
        self.streams += 1
        inner = super().stream(request)
        finished = False
        try:
            async for item in inner:
                finished = finished or isinstance(item, Finished)
                yield item
        except (GeneratorExit, asyncio.CancelledError):
            if not finished:
                self.cut_short += 1
            raise
        finally:
            await inner.aclose()  # closing this stream closes the scripted one at once, as the server expects


def _find_gate(host: object) -> object | None:
    """The model gate: `host.gate` today; any attribute with `waiting` and `busy` if that moves."""
    gate = getattr(host, "gate", None)
    if gate is not None:
        return gate
    for value in vars(host).values():
        if hasattr(value, "waiting") and hasattr(value, "busy"):
            return value
    return None


def _rss_bytes() -> int:
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the peak, the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _open_fds() -> int | None:
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder))
        except OSError:
            continue
    return None


def _lineage_counts(db_path: Path) -> dict[str, Any]:
    """Runs still open (journal) and closed runs by status, read on a short-lived read-only connection."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            open_runs = conn.execute("SELECT count(*) FROM open_runs").fetchone()[0]
            closed = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return {"open_runs": None, "runs_by_status": {}, "lineage_error": str(exc)}
    return {"open_runs": open_runs, "runs_by_status": closed}


def add_state_route(app: Litestar, backend: BenchBackend, settings: Settings) -> None:
    @get("/bench/state", include_in_schema=False)
    async def bench_state(
        request: Request, gc_first: Annotated[bool, Parameter(query="gc")] = False
    ) -> dict[str, Any]:
        lineage = await asyncio.to_thread(_lineage_counts, settings.db_path)
        if gc_first:
            gc.collect()
        gate = _find_gate(request.app.state.host)
        return {
            "gate_found": gate is not None,
            "gate_waiting": getattr(gate, "waiting", None),
            "gate_busy": getattr(gate, "busy", None),
            "gate_max_waiting": getattr(gate, "max_waiting", None),
            "backend_active": backend.active,
            "backend_cancelled": backend.cancelled,
            "backend_cut_short": backend.cut_short,
            "backend_streams": backend.streams,
            **lineage,
            "rss_bytes": _rss_bytes(),
            "asyncio_tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
            "open_fds": _open_fds(),
        }

    app.register(bench_state)


class _DrainingServer(uvicorn.Server):
    """As `deskpilot serve` does: set the app's `stopping` event first, so that open streams end."""

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self._stopping = stopping

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stopping.set()
        await super().shutdown(sockets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="DESKPILOT_HOME (a temporary folder)")
    parser.add_argument("--words", type=int, default=40, help="tokens per generation")
    parser.add_argument("--delay", type=float, default=0.002, help="seconds between tokens")
    parser.add_argument("--max-queue", type=int, default=None, help="requests allowed to wait (default: 4)")
    args = parser.parse_args()

    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ["DESKPILOT_HOME"] = str(args.home)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    settings = load_settings(home=args.home, port=port, https=False, worker=False, max_queue=args.max_queue)
    backend = BenchBackend(args.words, args.delay)
    extra: dict[str, Any] = {}
    if DocumentIndex is not None:
        extra["index"] = DocumentIndex(index_folder(settings.home), embedder=HashEmbedder())
    app = create_app(settings, backend=backend, **extra)
    add_state_route(app, backend, settings)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(max(1, settings.shutdown_grace_seconds)),
    )
    print(f"PORT {port}", flush=True)
    # uvicorn stops gracefully on SIGINT, then raises the signal again: KeyboardInterrupt, after the fact.
    with contextlib.suppress(KeyboardInterrupt):
        _DrainingServer(config, app.state.stopping).run(sockets=[sock])


if __name__ == "__main__":
    main()

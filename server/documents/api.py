"""The user's documents over HTTP: index them, see the index's state, and ask questions with citations.

`/v1/ask` retrieves the best passages (optionally within a scope), then streams an answer that cites them
as [1], [2]..., then a `sources` event that says where each number points (document, page or offset,
snippet, score). When nothing scores above `ask_min_score`, no model is asked: the answer says so, because
a small model handed unrelated passages invents an answer. Lineage records the chunk ids and scores.

The answer is checked like a summary (`inference/faithful.py`), each sentence against the passages it
cites: a `grounded` event before `sources` says which sentences stand, and when too little does, the
passage sentences that best match the question, quoted, each with its passage's number.

The index loads torch and the embedding model (~10 s) in the background after start-up, so requests that
need no embeddings are never held up by it.

Only folders the user chose are read (`roots.py`): `/v1/index` answers 403 for a path outside the roots,
a symlink that leads out of them, or a path that does not exist, with one message shape for all three;
`/v1/ask` cites no passage of a file outside them (one indexed before, or under a root since removed).
`/v1/index/roots` lists the roots and sets the ones the user added.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Annotated

import anyio
import msgspec
from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import JSONBody
from litestar.response import ServerSentEvent
from msgspec import Meta

from deskpilot.indexes import EmbedderError, Hit, IndexStatus, Scope
from deskpilot.inference import Job, Passage, Ticket, ask_job
from deskpilot.inference.faithful import FaithfulChecker
from deskpilot.server.core.wire import NOT_BLANK, Client, DoneEvent, RunIn, ShortText, SourceOut, SourcesEvent
from deskpilot.server.documents.roots import IndexRoot, NotInRoots, RootRefused
from deskpilot.server.documents.service import Indexer
from deskpilot.server.runs import Event, FaithfulCheck, RunExecutor, options_of
from deskpilot.server.settings import Settings
from deskpilot.server.web.errors import ApiError
from deskpilot.server.web.sse import sse_response

__all__ = ["AskRequest", "DocumentsAPI", "IndexRequest", "IndexRootsIn", "IndexRootsOut"]

NOTHING_FOUND = "I could not find anything about this in your indexed documents."


class IndexUnavailable(ApiError):
    status_code = 503
    code = "index_unavailable"


class PathNotAllowed(ApiError):
    """403: outside the roots, or not there; the two answer alike."""

    status_code = 403
    code = "path_not_allowed"


class AskRequest(RunIn, kw_only=True):
    question: Annotated[str, Meta(min_length=1, max_length=2_000, extra_json_schema={"pattern": NOT_BLANK})]
    k: Annotated[int, Meta(ge=1, le=20)] = 5
    scope: Scope | None = None
    client: Client = "api"
    source_ref: ShortText | None = None


# No NUL: no file system takes one in a name (os.path raised ValueError, a 500).
PathText = Annotated[str, Meta(min_length=1, max_length=4_096, pattern=r"^[^\x00]*$")]


class IndexRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """Files and folders to index; each must lie inside a root (see `/v1/index/roots`)."""

    paths: Annotated[list[PathText], Meta(min_length=1, max_length=100)]
    exclude: list[str] = []


class IndexRootsOut(msgspec.Struct, rename="camel", kw_only=True):
    roots: list[IndexRoot]


class IndexRootsIn(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """The folders the user added, in full: one left out is no longer a root. Roots from the settings
    (`index_roots`) are IT's and stay."""

    added: Annotated[list[PathText], Meta(max_length=100)]


class IndexStarted(msgspec.Struct, rename="camel", kw_only=True):
    started: bool
    status: IndexStatus


def _passages(hits: list[Hit]) -> tuple[Passage, ...]:
    return tuple(
        Passage(number=i, title=h.title or h.source, text=h.text, page=h.page)
        for i, h in enumerate(hits, start=1)
    )


def _sources(hits: list[Hit]) -> SourcesEvent:
    return SourcesEvent(
        sources=[
            SourceOut(
                number=i,
                document_id=h.document_id,
                source=h.source,
                path=h.path,
                title=h.title,
                page=h.page,
                start=h.start,
                end=h.end,
                snippet=h.snippet,
                score=h.score,
            )
            for i, h in enumerate(hits, start=1)
        ]
    )


def _within_roots(hits: list[Hit], indexer: Indexer) -> list[Hit]:
    """Passages of files inside the roots, and of items without a path (mail, OneDrive)."""
    return [h for h in hits if h.path is None or indexer.roots.contains(h.path)]


def _answer_check(checker: FaithfulChecker, question: str, passages: tuple[Passage, ...]) -> FaithfulCheck:
    """The check of an answer: its sentences against the passages they cite (`part` = the number)."""

    # The passages are split and embedded once, while the model writes (`FaithfulCheck.begin`).
    source = functools.cache(lambda: checker.source([p.text for p in passages], [p.number for p in passages]))
    return FaithfulCheck(lambda output: checker.check_answer(output, source(), question), prepare=source)


async def _with_sources(
    events: AsyncGenerator[Event, None], hits: list[Hit]
) -> AsyncGenerator[Event | SourcesEvent, None]:
    """The answer's events with `sources` just before `done`."""
    async for event in events:
        if isinstance(event, DoneEvent):
            yield _sources(hits)
        yield event


class DocumentsAPI(Controller):
    path = "/v1"
    tags = ("documents",)

    @post("/index", status_code=202, summary="Index files and folders (runs in the background)")
    async def start_index(
        self, data: JSONBody[IndexRequest], indexer: NamedDependency[Indexer]
    ) -> IndexStarted:
        def checked() -> list[Path]:
            return [indexer.roots.check(p) for p in data.paths]

        try:
            paths = await anyio.to_thread.run_sync(checked)
        except NotInRoots as exc:
            raise PathNotAllowed(str(exc)) from exc
        if indexer.running:
            raise ClientException(
                "an indexing run is already in progress; see /v1/index/status", status_code=409
            )
        indexer.start(paths, data.exclude)
        return IndexStarted(started=True, status=await anyio.to_thread.run_sync(indexer.index.status))

    @get("/index/status", summary="Documents, chunks, skipped files with reasons, and indexing progress")
    async def index_status(self, indexer: NamedDependency[Indexer]) -> IndexStatus:
        return await anyio.to_thread.run_sync(indexer.index.status)

    @get("/index/roots", summary="The folders documents may be indexed from")
    async def index_roots(self, indexer: NamedDependency[Indexer]) -> IndexRootsOut:
        return IndexRootsOut(roots=await anyio.to_thread.run_sync(indexer.roots.listing))

    @put("/index/roots", summary="Set the folders the user added for indexing (the settings' roots stay)")
    async def set_index_roots(
        self, data: JSONBody[IndexRootsIn], indexer: NamedDependency[Indexer]
    ) -> IndexRootsOut:
        try:
            roots = await anyio.to_thread.run_sync(lambda: indexer.roots.set_added(data.added))
        except RootRefused as exc:
            raise ClientException(str(exc)) from exc
        return IndexRootsOut(roots=roots)

    @post("/ask", status_code=200, summary="Answer a question from your documents, with citations (SSE)")
    async def ask(
        self,
        data: JSONBody[AskRequest],
        executor: NamedDependency[RunExecutor],
        indexer: NamedDependency[Indexer],
        checker: NamedDependency[FaithfulChecker],
        app_settings: NamedDependency[Settings],
        stopping: NamedDependency[asyncio.Event],
    ) -> ServerSentEvent:
        if not data.question.strip():
            raise ClientException("`question` is empty")

        async def build(ticket: Ticket) -> AsyncGenerator[Event | SourcesEvent, None]:
            try:
                hits = await anyio.to_thread.run_sync(
                    lambda: indexer.index.search(
                        data.question, k=data.k, scope=data.scope, min_score=app_settings.ask_min_score
                    )
                )
            except (OSError, sqlite3.Error, EmbedderError) as exc:
                raise IndexUnavailable(f"the document index could not be searched: {exc}") from exc
            hits = await anyio.to_thread.run_sync(lambda: _within_roots(hits, indexer))
            passages = _passages(hits)

            def job(context_length: int) -> Job:
                return ask_job(context_length=context_length, question=data.question, passages=passages)

            if not hits:
                ticket.release()
                return _with_sources(
                    executor.answer_without_model(
                        job(executor.host.context_length()),
                        NOTHING_FOUND,
                        client=data.client,
                        source_ref=data.source_ref,
                    ),
                    hits,
                )
            retrieved = [{"id": h.chunk_id, "score": h.score, "document_id": h.document_id} for h in hits]
            return _with_sources(
                executor.execute(
                    job,
                    ticket=ticket,
                    client=data.client,
                    source_ref=data.source_ref,
                    retrieved=retrieved,
                    options=options,
                    check=_answer_check(checker, data.question, passages),
                ),
                hits,
            )

        options = options_of(data)
        run = await executor.admitted(build, task="ask", options=options)
        return sse_response(
            run.events, release=run.release, keepalive=app_settings.keepalive_seconds, stopping=stopping
        )

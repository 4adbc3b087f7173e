"""Server-sent events: Litestar's own `ServerSentEvent`, plus the two things it lacks, done here.

We chose Litestar's SSE over sse-starlette: sse-starlette pings and drains on shutdown, but it only mounts
as a raw ASGI handler, outside Litestar's routing, dependency injection, validation, exception handlers and
OpenAPI document — the things every other endpoint relies on. What Litestar lacks is small:
- keep-alive: while no event is ready for `keepalive` seconds we send an SSE comment (`: keep-alive`), so
  proxies and the task pane's idle timers know the stream is alive during a long prompt or a queue wait;
- drain on shutdown: uvicorn waits for open responses before it stops, so a stream must end by itself. The
  app's `stopping` event (set by our uvicorn server the moment shutdown begins) ends every stream with an
  `error` event (code `shutdown`); closing the stream cancels its generation and records it in lineage.
A client that disconnects cancels the task iterating this stream (Litestar listens for `http.disconnect`),
which closes the event source and with it the model's generation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import anyio
import msgspec
from litestar.background_tasks import BackgroundTask
from litestar.response import ServerSentEvent, ServerSentEventMessage

from deskpilot.server.core.wire import (
    DoneEvent,
    ErrorEvent,
    GroundedEvent,
    MetaEvent,
    ProgressEvent,
    ResultEvent,
    SourcesEvent,
    TokenEvent,
)

__all__ = ["sse_response"]

EVENT_NAMES: dict[type, str] = {
    MetaEvent: "meta",
    TokenEvent: "token",
    DoneEvent: "done",
    ErrorEvent: "error",
    SourcesEvent: "sources",
    ProgressEvent: "progress",
    ResultEvent: "result",
    GroundedEvent: "grounded",
}
_KEEPALIVE = ServerSentEventMessage(comment="keep-alive", data=None)

Event = (
    MetaEvent
    | TokenEvent
    | DoneEvent
    | ErrorEvent
    | SourcesEvent
    | ProgressEvent
    | ResultEvent
    | GroundedEvent
)


def sse_response(
    events: AsyncGenerator[Event, None],
    *,
    keepalive: float,
    stopping: asyncio.Event,
    release: Callable[[], None] | None = None,
) -> ServerSentEvent:
    """`release` runs once the response is over, whether its body was sent or cut short by the client
    (Litestar runs a response's background task after the body in both cases)."""

    async def after() -> None:
        if release is not None:
            release()

    # X-Accel-Buffering: a reverse proxy in front of a team server must not buffer the stream.
    return ServerSentEvent(
        _encoded(events, keepalive, stopping),
        headers={"X-Accel-Buffering": "no"},
        background=BackgroundTask(after),
    )


async def _encoded(
    events: AsyncGenerator[Event, None], keepalive: float, stopping: asyncio.Event
) -> AsyncIterator[ServerSentEventMessage]:
    async for item in _with_keepalive(events, keepalive, stopping):
        if item is None:
            yield _KEEPALIVE
        else:
            yield ServerSentEventMessage(
                event=EVENT_NAMES[type(item)], data=msgspec.json.encode(item).decode()
            )


async def _with_keepalive(
    events: AsyncGenerator[Event, None], keepalive: float, stopping: asyncio.Event
) -> AsyncIterator[Event | None]:
    """Yield the events, `None` whenever `keepalive` seconds pass without one, and stop on shutdown.

    The source runs in its own task feeding a one-slot queue, so that waiting for it can time out without
    cancelling it half way through a step.
    """
    # An event, the error that ended the source, or None: the source is done.
    queue: asyncio.Queue[Event | Exception | None] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        except Exception as exc:  # handed over and raised by the consumer
            await queue.put(exc)
        else:
            await queue.put(None)

    source = asyncio.create_task(pump())
    stop = asyncio.create_task(stopping.wait())
    get: asyncio.Task[Event | Exception | None] | None = None
    try:
        while True:
            get = get or asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({get, stop}, timeout=keepalive, return_when=asyncio.FIRST_COMPLETED)
            if get in done:
                item, get = get.result(), None
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
            elif stop in done:
                yield ErrorEvent(code="shutdown", message="the server is stopping; please retry in a moment")
                return
            else:
                yield None
    finally:
        for task in (source, stop, get):
            if task is not None:
                task.cancel()
        # Closing the source stops the model; wait for it even if we are being cancelled ourselves.
        with anyio.CancelScope(shield=True):
            await asyncio.gather(source, return_exceptions=True)
            await events.aclose()

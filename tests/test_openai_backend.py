"""The OpenAI-compatible backend under faults: a proxy (tests/openai_server.py) in front of a real
`llama_cpp.server` answers 429 and 500, drops the stream and stalls. Before the first token the backend
retries; after it, the stream fails loudly, never ends as if the truncated answer were whole."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from openai_server import Fault, FaultProxy, llama_server

from deskpilot.inference import BackendError, Finished, GenerationRequest, Message, Token
from deskpilot.inference.openai_compat import OpenAICompatBackend

pytestmark = [pytest.mark.anyio, pytest.mark.model]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with llama_server() as base:
        yield base


@pytest.fixture
def proxy(upstream: str) -> Iterator[FaultProxy]:
    fronted = FaultProxy(upstream)
    yield fronted
    fronted.close()


def _backend(proxy: FaultProxy, **kw: Any) -> OpenAICompatBackend:
    settings: dict[str, Any] = {"context_length": 2048, "backoff": 0.01, "read_timeout": 2.0, **kw}
    return OpenAICompatBackend(f"{proxy.url}/v1", "smollm2", **settings)


def _request(max_tokens: int = 12, **kw: Any) -> GenerationRequest:
    messages = (Message("user", "Write a long story about a lighthouse keeper."),)
    return GenerationRequest(messages=messages, max_tokens=max_tokens, **kw)


async def _collect(backend: OpenAICompatBackend, request: GenerationRequest) -> list[Token | Finished]:
    return [item async for item in backend.stream(request)]


async def test_429_and_500_before_the_first_token_are_retried_honouring_retry_after(
    proxy: FaultProxy,
) -> None:
    proxy.faults = [Fault(status=429, retry_after="0.3"), Fault(status=500)]
    t0 = time.perf_counter()
    items = await _collect(_backend(proxy), _request())
    assert time.perf_counter() - t0 >= 0.3  # it waited as long as Retry-After asked
    assert isinstance(items[-1], Finished) and len(proxy.bodies) == 3


async def test_retries_give_up_with_a_clear_error(proxy: FaultProxy) -> None:
    proxy.faults = [Fault(status=503)] * 3
    with pytest.raises(BackendError, match=rf"smollm2 at {proxy.url}/v1: HTTP 503.*after 3 attempts"):
        await _collect(_backend(proxy, max_retries=2), _request())
    proxy.faults = [Fault(status=429, retry_after="3600")]
    with pytest.raises(BackendError, match="asks to wait 3600 s"):
        await _collect(_backend(proxy), _request())


async def test_a_stream_dropped_before_the_first_token_is_retried(proxy: FaultProxy) -> None:
    proxy.faults = [Fault(drop_after=0)]
    items = await _collect(_backend(proxy), _request())
    assert isinstance(items[-1], Finished) and len(proxy.bodies) == 2


async def test_a_stream_dropped_after_tokens_fails_instead_of_ending_short(proxy: FaultProxy) -> None:
    proxy.faults = [Fault(drop_after=4)]
    seen: list[Token | Finished] = []
    with pytest.raises(BackendError, match=r"broke off after \d+ tokens"):
        async for item in _backend(proxy).stream(_request(max_tokens=30)):
            seen.append(item)
    assert seen and not any(isinstance(i, Finished) for i in seen) and len(proxy.bodies) == 1


async def test_a_stall_times_out(proxy: FaultProxy) -> None:
    proxy.faults = [Fault(stall=1.5, stall_after=3)]  # mid-stream: no retry
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="stalled"):
        await _collect(_backend(proxy, read_timeout=0.5), _request(max_tokens=30))
    assert time.perf_counter() - t0 < 1.5
    proxy.faults = [Fault(stall=1.0)] * 2  # before the answer: retried, then given up
    with pytest.raises(BackendError, match=r"no answer in time.*after 2 attempts"):
        await _collect(_backend(proxy, read_timeout=0.3, max_retries=1), _request())


async def test_closing_the_stream_closes_the_upstream_connection(proxy: FaultProxy) -> None:
    stream = _backend(proxy).stream(_request(max_tokens=300))
    async for _ in stream:
        break
    await stream.aclose()
    # The proxy's forwarding thread notices the closed connection; a new request goes through at once.
    assert isinstance((await _collect(_backend(proxy), _request(max_tokens=3)))[-1], Finished)


async def test_without_server_side_schemas_the_output_is_validated_and_repaired_once(
    proxy: FaultProxy,
) -> None:
    schema = {"enum": ["invoice", "receipt", "other"]}
    # No constraint is sent, so the first answer is free text; the proxy makes the server get the repair
    # right (constrained), as a better model would.
    constrained = {"response_format": {"type": "json_object", "schema": schema}}
    proxy.faults = [Fault(), Fault(extra=constrained)]
    backend = _backend(proxy, json_schema="validate")
    items = await _collect(backend, _request(max_tokens=10, temperature=0.0, json_schema=schema))
    text = "".join(i.text for i in items if isinstance(i, Token))
    assert text.strip().strip('"') in schema["enum"] and isinstance(items[-1], Finished)
    assert len(proxy.bodies) == 2 and "response_format" not in proxy.bodies[0]
    assert "does not follow the JSON Schema" in proxy.bodies[1]["messages"][-1]["content"]
    # A second failure is an error, not invalid output.
    proxy.faults = [Fault(), Fault()]
    with pytest.raises(BackendError, match="after one repair"):
        await _collect(backend, _request(max_tokens=10, temperature=0.0, json_schema=schema))

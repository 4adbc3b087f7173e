"""The inference backend contract (`deskpilot.inference.Backend`), run over every backend.

What a caller may rely on, whichever model serves it: tokens stream, then exactly one `Finished` with
usage; closing the stream stops the generation before `aclose()` returns; `prepare` does ahead of time
what `stream` would do first and stops when asked to; a prompt that cannot fit is refused with
`ContextOverflow` before anything streams; a JSON Schema constrains the output to JSON the schema
accepts; `count_tokens` measures text the way the prompt will hold it; `close` releases the model, and
later calls fail cleanly instead of crashing the process.

Backends: the scripted fake (`unit`), llama.cpp on the embedded model (`model`), the OpenAI-compatible
backend against llama-cpp-python's server on the embedded model (`model`), and ExLlamaV2 on the EXL2 model
folder named by DESKPILOT_EXL2_MODEL (`gpu`: skipped without CUDA).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest

from deskpilot.inference import (
    Backend,
    BackendError,
    ContextOverflow,
    Finished,
    GenerationRequest,
    Message,
    ScriptedBackend,
    Token,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _llama() -> Backend:
    from deskpilot.inference.llama import LlamaCppBackend

    return LlamaCppBackend(threads=2)


# Read at import: the autouse app_home fixture clears DESKPILOT_* variables before each test.
_EXL2_MODEL = os.environ.get("DESKPILOT_EXL2_MODEL", "")


def _exllamav2() -> Backend:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA (ExLlamaV2)")
    if not _EXL2_MODEL:
        pytest.fail(
            "CUDA is here but DESKPILOT_EXL2_MODEL is not set: `pip install -e '.[gpu]'`, download a "
            "small model ExLlamaV2 loads, e.g. `hf download HuggingFaceTB/SmolLM2-135M-Instruct --local-dir "
            "smollm2` "
            "(FP16 safetensors; an EXL2 quant of it from exllamav2's convert.py works too), and set "
            "DESKPILOT_EXL2_MODEL to that folder"
        )
    from deskpilot.inference.exllamav2 import ExLlamaV2Backend

    return ExLlamaV2Backend(Path(_EXL2_MODEL), context_length=4096)


BACKENDS = [
    pytest.param(ScriptedBackend, id="scripted", marks=pytest.mark.unit),
    pytest.param(_llama, id="llama.cpp", marks=pytest.mark.model),
    pytest.param(_exllamav2, id="exllamav2", marks=pytest.mark.gpu),
    # OpenAI-compatible (inference/openai_compat.py) against a real server on 127.0.0.1:
    # llama-cpp-python's own server on the embedded model (`llama_server`), never a patched HTTP client.
    pytest.param("openai", id="openai", marks=pytest.mark.model),
]


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    from openai_server import llama_server

    with llama_server() as base:
        yield base


def _openai(base: str) -> Backend:
    from deskpilot.inference.openai_compat import OpenAICompatBackend

    return OpenAICompatBackend(
        f"{base}/v1",
        "smollm2",
        context_length=2048,
        json_schema="json_object",  # llama-cpp-python's server takes the schema this way
        logprobs=True,
        prefix_caching=True,
        tokenize_url=f"{base}/extras/tokenize",
        repeat_penalty_field="repeat_penalty",
    )


@pytest.fixture(scope="module", params=BACKENDS)
def make_backend(request: pytest.FixtureRequest) -> Callable[[], Backend]:
    if request.param == "openai":
        base = request.getfixturevalue("llama_server")
        return lambda: _openai(base)
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def backend(make_backend: Callable[[], Backend]) -> Iterator[Backend]:
    """One backend per implementation, shared by the module (loading weights takes seconds)."""
    loaded = make_backend()
    yield loaded
    loaded.close()


def _request(
    text: str = "Write a long story about a lighthouse keeper and the sea.", max_tokens: int = 40, **kw: Any
) -> GenerationRequest:
    messages = (Message("system", "You are a helpful assistant."), Message("user", text))
    return GenerationRequest(messages=messages, max_tokens=max_tokens, **kw)


async def _collect(backend: Backend, request: GenerationRequest) -> list[Token | Finished]:
    return [item async for item in backend.stream(request)]


def _text(items: list[Token | Finished]) -> str:
    return "".join(i.text for i in items if isinstance(i, Token))


# -- streaming -----------------------------------------------------------------------------------------------


async def test_tokens_stream_then_exactly_one_finished_with_usage(backend: Backend) -> None:
    assert isinstance(backend, Backend)  # what ModelHost checks to tell a backend from a factory
    items = await _collect(backend, _request(max_tokens=12))
    finished = [i for i in items if isinstance(i, Finished)]
    assert len(finished) == 1 and items[-1] is finished[0]
    tokens = items[:-1]
    assert len(tokens) > 1 and all(isinstance(t, Token) and t.text for t in tokens)
    usage = finished[0].usage
    assert 0 < usage.completion_tokens <= 12 and usage.prompt_tokens > 0
    assert usage.finish_reason == ("length" if usage.completion_tokens == 12 else "stop")
    info = backend.info
    assert info.weights_digest.startswith("sha256:") and len(info.weights_digest) == 71
    assert info.context_length >= 1024 and info.model_id and info.backend


async def test_closing_the_stream_stops_the_generation(backend: Backend) -> None:
    stream = backend.stream(_request(max_tokens=300))
    seen = 0
    async for item in stream:
        assert isinstance(item, Token)
        seen += 1
        if seen == 3:
            break
    t0 = time.perf_counter()
    await stream.aclose()
    assert time.perf_counter() - t0 < 0.5  # decoding the other ~297 tokens would take seconds
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    # The model is free at once: a new generation runs to completion.
    assert isinstance((await _collect(backend, _request(max_tokens=5)))[-1], Finished)


async def test_generation_ends_as_soon_as_the_stop_pattern_matches(backend: Backend) -> None:
    pattern = r"(?:\S+\s+){3}\S"  # the fourth word has begun
    items = await _collect(backend, _request(max_tokens=40, stop_pattern=pattern))
    tokens = [i.text for i in items if isinstance(i, Token)]
    assert re.search(pattern, "".join(tokens)) and not re.search(pattern, "".join(tokens[:-1]))
    usage = items[-1].usage  # type: ignore[union-attr]
    assert usage.finish_reason == "stop" and usage.completion_tokens < 40


async def test_token_logprobs_only_when_asked(backend: Backend) -> None:
    plain = [i for i in await _collect(backend, _request(max_tokens=8)) if isinstance(i, Token)]
    assert plain and all(t.logprob is None for t in plain)
    scored = [
        i for i in await _collect(backend, _request(max_tokens=8, logprobs=True)) if isinstance(i, Token)
    ]
    assert scored and all(t.logprob is not None and -50 < t.logprob <= 0 for t in scored)


# -- prepare -------------------------------------------------------------------------------------------------


async def test_prepare_evaluates_ahead_and_stops_when_asked(backend: Backend) -> None:
    # A prompt no earlier test evaluated (the unique part comes first), so nothing of it is cached yet.
    request = _request(f"{uuid.uuid4().hex} Tell me how a lighthouse lens works.", max_tokens=4)
    stopped = await backend.prepare(request, lambda: True)  # someone is waiting for the model
    prepared = await backend.prepare(request, lambda: False)
    assert 0 <= stopped < prepared
    items = await _collect(backend, request)  # the prepared request still streams as usual
    usage = items[-1].usage  # type: ignore[union-attr]
    assert isinstance(items[-1], Finished) and prepared <= usage.prompt_tokens


# -- the context ---------------------------------------------------------------------------------------------


async def test_an_input_over_the_context_is_refused_before_anything_streams(backend: Backend) -> None:
    context = backend.info.context_length
    huge = _request("lighthouse " * context, max_tokens=10)
    assert backend.count_tokens(huge.messages[1].content) >= context
    seen: list[Token | Finished] = []
    with pytest.raises(ContextOverflow, match="exceed the model's context") as raised:
        async for item in backend.stream(huge):
            seen.append(item)
    assert seen == [] and raised.value.prompt_tokens >= context
    with pytest.raises(ContextOverflow):
        await backend.prepare(huge, lambda: False)
    # The room to generate counts too: half the context in, a whole context out, does not fit.
    with pytest.raises(ContextOverflow):
        await _collect(backend, _request("lighthouse " * (context // 2), max_tokens=context))
    # Refusing left the backend as it was.
    assert isinstance((await _collect(backend, _request(max_tokens=3)))[-1], Finished)


async def test_count_tokens_measures_text_as_the_prompt_holds_it(backend: Backend) -> None:
    short = "The lighthouse keeper"
    long = "The lighthouse keeper watched the ships pass the rocks in the storm all night long"
    assert backend.count_tokens("") == 0
    assert 0 < backend.count_tokens(short) < backend.count_tokens(long)
    request = _request(long, max_tokens=2)
    usage = (await _collect(backend, request))[-1].usage  # type: ignore[union-attr]
    # The prompt holds every message, plus whatever the chat template adds around them.
    assert usage.prompt_tokens >= sum(backend.count_tokens(m.content) for m in request.messages)


# -- structured output ---------------------------------------------------------------------------------------

KEEPER_SCHEMA = {
    "type": "object",
    "required": ["keeper", "mood", "ships"],
    "additionalProperties": False,
    "properties": {
        "keeper": {"anyOf": [{"type": "string", "maxLength": 30}, {"type": "null"}]},
        "mood": {"enum": ["calm", "stormy"]},
        "ships": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
    },
}


class Keeper(msgspec.Struct, forbid_unknown_fields=True):
    """KEEPER_SCHEMA as a Struct: decoding into it checks the output against the schema."""

    keeper: Annotated[str, msgspec.Meta(max_length=30)] | None
    mood: Literal["calm", "stormy"]
    ships: Annotated[list[int], msgspec.Meta(max_length=3)]


async def test_a_json_schema_constrains_the_output(backend: Backend) -> None:
    request = _request(max_tokens=60, temperature=0.0, repeat_penalty=1.0, json_schema=KEEPER_SCHEMA)
    items = await _collect(backend, request)
    msgspec.json.decode(_text(items), type=Keeper)  # raises if the output is not what the schema allows
    assert items[-1].usage.finish_reason == "stop"  # type: ignore[union-attr]
    labels = ["invoice", "receipt", "other"]
    label = await _collect(backend, _request(max_tokens=10, temperature=0.0, json_schema={"enum": labels}))
    assert msgspec.json.decode(_text(label)) in labels


# -- close ---------------------------------------------------------------------------------------------------


async def test_close_releases_the_model_and_later_calls_fail_cleanly(
    make_backend: Callable[[], Backend],
) -> None:
    backend = make_backend()
    assert isinstance((await _collect(backend, _request(max_tokens=2)))[-1], Finished)
    backend.close()
    backend.close()  # twice is harmless (the server and the worker may both shut down)
    with pytest.raises(BackendError, match="closed"):
        await _collect(backend, _request(max_tokens=2))
    with pytest.raises(BackendError, match="closed"):
        await backend.prepare(_request(), lambda: False)

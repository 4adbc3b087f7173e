"""The inference layer: templates, the gate, task assembly, llama.cpp internals (the contract every backend
meets is tests/contracts/test_backend.py)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from deskpilot.inference import (
    Email,
    GenerationRequest,
    Message,
    ModelBusy,
    ModelGate,
    TemplateError,
    Token,
    draft_reply_job,
    load_template,
    summarize_job,
)
from deskpilot.inference.templates import parse_template

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

INFERENCE = Path(__file__).resolve().parents[1] / "inference"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- templates ------------------------------------------------------------------------------------------


def test_template_identity_is_name_plus_file_hash() -> None:
    template = load_template("summarize")
    data = (INFERENCE / "templates" / "summarize.toml").read_bytes()
    assert template.template_id == "summarize@v1"
    assert template.content_hash == "sha256:" + hashlib.sha256(data).hexdigest()
    edited = parse_template(data.replace(b"accurately and briefly", b"briefly and accurately"), "edited")
    assert edited.template_id == template.template_id
    assert edited.content_hash != template.content_hash


def test_template_render_needs_every_value() -> None:
    with pytest.raises(TemplateError, match="needs a value for 'content'"):
        load_template("summarize").render(kind="text", sentences=2)


def test_template_files_are_validated(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('name = "bad"\nversion = 1\n')
    with pytest.raises(TemplateError, match=r"bad\.toml"):
        load_template("bad", tmp_path)
    with pytest.raises(TemplateError, match="no built-in template"):
        load_template("nope")


# --- task assembly --------------------------------------------------------------------------------------


def test_summarize_keeps_latest_message_whole_and_cuts_the_thread() -> None:
    latest = Email(body="Please approve the budget by Friday.", sender="ana@example.com", date="2026-11-20")
    old = tuple(Email(body=f"older message {i} " + "blah " * 300, date=f"2026-11-0{i}") for i in range(1, 6))
    job = summarize_job(context_length=1024, email=latest, thread=old)
    prompt = job.request.messages[1].content
    assert "Please approve the budget by Friday." in prompt
    assert job.truncated
    assert prompt.index("older message") < prompt.index("--- Latest message ---")
    # Newest earlier messages are kept first: 5 is in, 1 is not.
    assert "older message 5" in prompt and "older message 1" not in prompt


def test_summarize_text_fits_the_context() -> None:
    job = summarize_job(context_length=1024, text="word " * 10_000)
    assert job.truncated
    assert len(job.request.messages[1].content) < 1024 * 3.5


def test_draft_reply_options_reach_the_prompt() -> None:
    job = draft_reply_job(
        context_length=4096,
        email=Email(body="Can we meet Tuesday?"),
        tone="formal",
        length="short",
        instructions="Propose Wednesday instead.",
        signature="Bob",
    )
    system, user = job.request.messages
    assert "formal" in user.content and "Propose Wednesday instead." in user.content
    assert '"Bob"' in system.content
    assert (
        job.request.max_tokens
        < draft_reply_job(context_length=4096, email=Email(body="x"), length="long").request.max_tokens
    )


# --- the gate -------------------------------------------------------------------------------------------


async def test_gate_serializes_and_bounds_the_queue() -> None:
    gate = ModelGate(max_waiting=1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str) -> None:
        async with gate.slot():
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("second"))
    await asyncio.sleep(0)
    assert gate.busy and gate.waiting == 1
    with pytest.raises(ModelBusy) as busy:
        gate.reserve()
    assert busy.value.retry_after >= 1
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert not gate.busy and gate.waiting == 0


async def test_admission_reserves_a_place_before_the_model_is_taken() -> None:
    gate = ModelGate(max_waiting=1)
    first, second = gate.reserve(), gate.reserve()  # both admitted, neither holds the model yet
    with pytest.raises(ModelBusy):
        gate.reserve()
    second.release()
    second.release()  # idempotent
    async with gate.slot(first):
        assert gate.busy and gate.waiting == 0
        third = gate.reserve()
        with pytest.raises(ModelBusy):
            gate.reserve()
        third.release()
    first.release()  # already used: no effect
    assert gate.waiting == 0


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    gate = ModelGate(max_waiting=1)
    async with gate.slot():
        waiter = asyncio.create_task(gate.slot().__aenter__())
        await asyncio.sleep(0)
        assert gate.waiting == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert gate.waiting == 0
        gate.reserve().release()  # room again


# --- llama.cpp internals (the contract every backend meets is tests/contracts/test_backend.py) ----------


@pytest.fixture(scope="module")
def llama_backend():  # type: ignore[no-untyped-def]
    from deskpilot.inference.llama import LlamaCppBackend

    backend = LlamaCppBackend(threads=2)
    yield backend
    backend.close()


def _request(max_tokens: int = 40, **kw: object) -> GenerationRequest:
    messages = (
        Message("system", "You are a helpful assistant."),
        Message("user", "Write a long story about a lighthouse keeper and the sea."),
    )
    return GenerationRequest(messages=messages, max_tokens=max_tokens, **kw)  # type: ignore[arg-type]


@pytest.mark.model
async def test_llama_logprobs_match_llama_cpp_with_all_logits(llama_backend) -> None:  # type: ignore[no-untyped-def]
    """Our cheap scorer against llama-cpp-python's own logprobs (which need logits for every position)."""
    from llama_cpp import Llama

    request = _request(max_tokens=10, temperature=0.0, repeat_penalty=1.0, logprobs=True)
    ours = [i for i in [item async for item in llama_backend.stream(request)] if isinstance(i, Token)]
    reference = Llama(
        model_path=llama_backend._llm.model_path, n_ctx=512, n_threads=2, logits_all=True, verbose=False
    )
    try:
        prompt, _, _ = llama_backend._prompt(request)
        out = reference.create_completion(
            prompt=prompt, max_tokens=10, temperature=0.0, repeat_penalty=1.0, logprobs=1
        )
    finally:
        reference.close()
    expected = out["choices"][0]["logprobs"]
    assert "".join(t.text for t in ours) == out["choices"][0]["text"]
    assert [t.text for t in ours] == expected["tokens"]  # plain ASCII: one token per delta
    for token, logprob in zip(ours, expected["token_logprobs"], strict=True):
        assert token.logprob == pytest.approx(logprob, abs=2e-3)


@pytest.mark.model
async def test_llama_greedy_constrained_decoding_is_exactly_llama_cpps_grammar_sampling(
    llama_backend,
) -> None:  # type: ignore[no-untyped-def]
    """The candidates-first grammar check (`_GreedyGrammar`) must pick what llama.cpp's sampler picks. A
    string schema forces nothing before its closing quote, so both decode step by step; the output ends
    with the value, where llama.cpp may still add the space its grammar allows."""
    import json

    from llama_cpp import LlamaGrammar

    schema = {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "null"}]}
    request = _request(max_tokens=30, temperature=0.0, repeat_penalty=1.0, json_schema=schema)
    ours = "".join(
        i.text for i in [item async for item in llama_backend.stream(request)] if isinstance(i, Token)
    )
    prompt, _, _ = llama_backend._prompt(request)
    reference = llama_backend._llm.create_completion(
        prompt=prompt,
        max_tokens=30,
        temperature=0.0,
        repeat_penalty=1.0,
        grammar=LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False),
    )
    assert ours == reference["choices"][0]["text"].rstrip(" ") and json.loads(ours)


@pytest.mark.model
async def test_llama_json_decoding_forces_what_the_schema_forces_and_scores_all(llama_backend) -> None:  # type: ignore[no-untyped-def]
    """Greedy decoding under a JSON Schema, replayed: the same prompt evaluated again in the same chunks and
    batches (llama.cpp's results depend a little on batch sizes), keeping every logit. Each token the
    model chose is the likeliest one the grammar allows at that point, each other token is text the schema
    forced (`JsonForcing`), and every token's log-probability, forced ones included, is the one at the
    position before it."""
    import json

    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from deskpilot.inference._json_forcing import JsonForcing
    from deskpilot.inference.llama import _PROMPT_CHUNK, _GreedyGrammar, _logprob

    schema = {
        "type": "object",
        "required": ["keeper", "mood", "ships"],
        "properties": {
            "keeper": {"anyOf": [{"type": "string", "maxLength": 30}, {"type": "null"}]},
            "mood": {"enum": ["calm", "stormy"]},
            "ships": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
        },
    }
    request = _request(max_tokens=60, temperature=0.0, repeat_penalty=1.0, json_schema=schema, logprobs=True)
    llm = llama_backend._llm
    llm.n_tokens = 0  # nothing cached: the replay below evaluates the prompt in the same chunks
    ours = [i for i in [item async for item in llama_backend.stream(request)] if isinstance(i, Token)]
    assert set(json.loads("".join(t.text for t in ours))) == {"keeper", "mood", "ships"}
    ids = [llm.tokenize(t.text.encode(), add_bos=False, special=False) for t in ours]
    assert all(len(i) == 1 for i in ids)  # plain ASCII: one token per delta
    prompt, _, _ = llama_backend._prompt(request)
    # Which tokens were forced: the follower, replayed over the output.
    forcing = JsonForcing(schema)
    forced, pending, batches = [], forcing.take_forced(), [[prompt[-1]]]
    for token, (token_id,) in zip(ours, ids, strict=True):
        forced.append(bool(pending))
        if pending:
            assert pending.startswith(token.text)
            pending = pending[len(token.text) :]
            batches[-1].append(token_id)
        else:
            forcing.feed(token.text)
            pending = forcing.take_forced()
            batches.append([token_id])
    assert forcing.done and any(forced) and not all(forced)
    llm.n_tokens = 0
    llama_backend._evaluate(prompt, lambda: False, _PROMPT_CHUNK)
    rows = [row for batch in batches for row in llama_backend._eval_rows(batch, all_rows=True)]
    grammar = _GreedyGrammar(llm, json_schema_to_gbnf(json.dumps(schema)))
    try:
        for k, (token, (token_id,)) in enumerate(zip(ours, ids, strict=True)):
            assert token.logprob == pytest.approx(_logprob(rows[k], token_id), abs=1e-4)
            if not forced[k]:
                assert grammar.choose(rows[k]) == token_id
            grammar.accept(token_id)
    finally:
        grammar.close()


def test_llama_text_assembly_holds_back_a_possible_stop_string_and_splits_no_character() -> None:
    from deskpilot.inference.llama import _StopAwareText

    text = _StopAwareText(["<|im_end|>"])
    assert text.feed(b"Total <", -0.5) == [Token("Total ", -0.5)]  # "<" may start the stop string
    assert text.feed(b"5", -0.25) == [Token("<5", -0.25)]  # it did not: released
    assert text.feed("€".encode()[:2], -1.0) == []  # half a character waits for the rest
    assert text.feed("€".encode()[2:] + b"<|im", -1.0) == [Token("€", -2.0)]  # log-probs summed
    assert text.feed(b"_end|> tail", -0.1) == [] and text.stopped  # nothing of or after the stop string
    assert text.flush() == []


@pytest.mark.model
async def test_llama_digest_is_the_sha256_of_the_weights_it_runs(llama_backend) -> None:  # type: ignore[no-untyped-def]
    """The embedded Q4_1 weights run as Q8_0 (`requantized_embedded_model`): the digest and the model id
    name what runs. The conversion is deterministic, so the digest is the same on every machine."""
    from deskpilot.inference.llama import EMBEDDED_MODEL_ID, requantized_embedded_model

    expected = hashlib.sha256(Path(llama_backend._llm.model_path).read_bytes()).hexdigest()
    assert llama_backend.info.weights_digest == f"sha256:{expected}"
    assert llama_backend.info.model_id == EMBEDDED_MODEL_ID == "SmolLM2-135M-Instruct-Q8_0"
    again, folder = requantized_embedded_model(None, threads=1)
    try:
        assert hashlib.sha256(again.read_bytes()).hexdigest() == expected
    finally:
        folder.cleanup()


def test_weights_digest_is_cached(tmp_path: Path) -> None:
    from deskpilot.inference.digest import weights_digest

    weights = tmp_path / "m.gguf"
    weights.write_bytes(b"abc" * 1000)
    first = weights_digest(weights, tmp_path / "cache")
    assert first == "sha256:" + hashlib.sha256(b"abc" * 1000).hexdigest()
    assert (tmp_path / "cache" / "weights-digests.json").read_text().count("sha256:") == 1
    assert weights_digest(weights, tmp_path / "cache") == first
    weights.write_bytes(b"changed")
    assert weights_digest(weights, tmp_path / "cache") != first

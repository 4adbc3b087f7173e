"""The ExLlamaV2 backend's parts that run without a GPU (`inference/exllamav2.py`).

The backend itself is held to the contract suite (`tests/contracts/test_backend.py`, tier `gpu`). Here: the
model folder (what is read, what is refused, the weights digest), the chat template, the error on a machine
that cannot run ExLlamaV2, the driver thread with its handlers against a scripted generator, and the JSON
Schema enforcer on the embedded SmolLM2's vocabulary (tier `model`: it reads the GGUF's vocabulary). The
script answers `iterate()` with results shaped as `ExLlamaV2DynamicGenerator.iterate` documents them
(exllamav2's generator/dynamic.py), one token per call, so the threading, cancellation and token accounting
are checked here; that real results look like this is what the contract suite checks on a GPU.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from deskpilot.inference import BackendError, Finished, GenerationRequest, Message, Token
from deskpilot.inference.exllamav2 import (
    ChatTemplate,
    ExLlamaV2Backend,
    _blank_tokens,
    _Driver,
    _json_filter_class,
    _JsonEnforcer,
    _PrefillHandler,
    _scoring_job_class,
    _StreamHandler,
    model_folder_digest,
    read_model_folder,
)

# The enforcer's tests are also `model` (they read the embedded GGUF's vocabulary): not in the quick tier.
pytestmark = pytest.mark.unit

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value), encoding="utf-8")


def make_model_folder(root: Path, name: str = "SmolLM2-135M-Instruct-exl2") -> Path:
    """A folder shaped like an EXL2 model: real (tiny) safetensors files, config, tokenizer config."""
    folder = root / name
    folder.mkdir(parents=True)
    _write_json(folder / "config.json", {"architectures": ["LlamaForCausalLM"], "eos_token_id": 2})
    _write_json(
        folder / "tokenizer_config.json",
        {"chat_template": CHATML, "bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}},
    )
    _write_json(folder / "generation_config.json", {"eos_token_id": [2, 7]})
    save_file({"w": np.arange(12, dtype=np.float16).reshape(3, 4)}, str(folder / "output-00002.safetensors"))
    save_file({"v": np.ones(5, dtype=np.float16)}, str(folder / "output-00001.safetensors"))
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    return folder


def _framed_sha256(folder: Path, names: list[str]) -> str:
    h = hashlib.sha256()
    for name in names:
        data = (folder / name).read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode() + data)
    return "sha256:" + h.hexdigest()


# -- the weights digest --------------------------------------------------------------------------------------


def test_the_digest_covers_config_and_tensor_files_in_name_order(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path)
    digest = model_folder_digest(folder)
    names = ["config.json", "output-00001.safetensors", "output-00002.safetensors"]
    assert digest == _framed_sha256(folder, names)
    (folder / "tokenizer.json").write_text('{"changed": true}', encoding="utf-8")
    (folder / "README.md").write_text("not weights", encoding="utf-8")
    assert model_folder_digest(folder) == digest  # only config.json and the tensors count


def test_the_digest_changes_when_one_byte_changes(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path)
    before = model_folder_digest(folder)
    weights = folder / "output-00002.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # a tensor byte, same size
    weights.write_bytes(bytes(data))
    assert model_folder_digest(folder) != before


def test_the_digest_does_not_depend_on_the_order_files_were_written(tmp_path: Path) -> None:
    contents = {"config.json": b"{}", "a.safetensors": b"first", "b.safetensors": b"second"}
    digests = []
    for order in (
        ["a.safetensors", "b.safetensors", "config.json"],
        ["config.json", "b.safetensors", "a.safetensors"],
    ):
        folder = tmp_path / "-".join(order)
        folder.mkdir()
        for name in order:
            (folder / name).write_bytes(contents[name])
        digests.append(model_folder_digest(folder))
    assert digests[0] == digests[1]


def test_moving_bytes_between_files_changes_the_digest(tmp_path: Path) -> None:
    """Each file is framed by its name and size, so the same bytes split differently are other weights."""
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, (a, b) in ((one, (b"xy", b"z")), (two, (b"x", b"yz"))):
        folder.mkdir()
        (folder / "config.json").write_bytes(b"{}")
        (folder / "a.safetensors").write_bytes(a)
        (folder / "b.safetensors").write_bytes(b)
    assert model_folder_digest(one) != model_folder_digest(two)


def test_the_digest_is_cached_by_size_and_modification_time(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path)
    cache = tmp_path / "cache"
    first = model_folder_digest(folder, cache)
    assert first == model_folder_digest(folder) and (cache / "model-folder-digests.json").is_file()
    # Same size, same mtime: the cached digest answers without reading the files (so it is stale here).
    weights = folder / "output-00001.safetensors"
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert model_folder_digest(folder, cache) == first
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched: hashed again
    assert model_folder_digest(folder, cache) == model_folder_digest(folder) != first


# -- the model folder ----------------------------------------------------------------------------------------


def test_a_model_folder_gives_its_template_tokens_and_stop_ids(tmp_path: Path) -> None:
    folder = read_model_folder(make_model_folder(tmp_path))
    assert folder.model_id == "SmolLM2-135M-Instruct-exl2"
    assert folder.chat_template == CHATML
    assert (folder.bos_token, folder.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert folder.eos_token_ids == (2, 7)  # config.json's, then generation_config.json's, once each
    assert folder.weight_files == ("output-00001.safetensors", "output-00002.safetensors")


def test_a_hub_cache_snapshot_is_named_by_its_repository(tmp_path: Path) -> None:
    snapshot = tmp_path / "models--turboderp--Llama-3.2-1B-exl2" / "snapshots"
    folder = read_model_folder(make_model_folder(snapshot, "0123456789abcdef"))
    assert folder.model_id == "turboderp/Llama-3.2-1B-exl2"


def test_the_chat_template_is_read_where_transformers_saves_it(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path)
    _write_json(folder / "tokenizer_config.json", {"chat_template": [{"name": "tool_use", "template": "T"}]})
    with pytest.raises(BackendError, match="none named default"):
        read_model_folder(folder)
    named = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    _write_json(folder / "tokenizer_config.json", {"chat_template": named})
    assert read_model_folder(folder).chat_template == "D"
    _write_json(folder / "chat_template.json", {"chat_template": "J"})
    assert read_model_folder(folder).chat_template == "J"
    (folder / "chat_template.jinja").write_text("{{ messages[0]['content'] }}", encoding="utf-8")
    assert read_model_folder(folder).chat_template == "{{ messages[0]['content'] }}"


def test_the_chat_template_renders_as_transformers_does(tmp_path: Path) -> None:
    template = ChatTemplate(read_model_folder(make_model_folder(tmp_path)))
    prompt = template.render((Message("system", "Be brief."), Message("user", "Hi")))
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def _no_config(folder: Path) -> None:
    (folder / "config.json").unlink()


def _bad_config(folder: Path) -> None:
    (folder / "config.json").write_text("{not json", encoding="utf-8")


def _no_weights(folder: Path) -> None:
    for path in folder.glob("*.safetensors"):
        path.unlink()


def _no_template(folder: Path) -> None:
    _write_json(folder / "tokenizer_config.json", {"eos_token": "</s>"})


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_no_config, "is not a model folder: it has no config.json"),
        (_bad_config, "cannot read config.json"),
        (_no_weights, r"has no \*\.safetensors weights"),
        (_no_template, "has no chat template"),
    ],
)
def test_a_folder_that_is_not_a_model_is_refused_by_name(tmp_path: Path, spoil: Any, message: str) -> None:
    folder = make_model_folder(tmp_path)
    spoil(folder)
    with pytest.raises(BackendError, match=message):
        read_model_folder(folder)
    with pytest.raises(BackendError, match=message):  # before any GPU work, on any machine
        ExLlamaV2Backend(folder)


def test_a_missing_folder_or_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="model folder not found"):
        ExLlamaV2Backend(tmp_path / "absent")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(BackendError, match="ExLlamaV2 loads a folder, not a file"):
        ExLlamaV2Backend(gguf)


def test_an_unknown_cache_mode_is_refused() -> None:
    with pytest.raises(BackendError, match="unknown cache_mode 'Q5': one of FP16, Q8, Q6, Q4"):
        ExLlamaV2Backend(Path("anywhere"), cache_mode="Q5")


_MISSING = [
    *([] if torch.cuda.is_available() else ["sees no CUDA device"]),
    *([] if importlib.util.find_spec("exllamav2") else ["exllamav2 is not installed"]),
]


@pytest.mark.skipif(not _MISSING, reason="this machine can run ExLlamaV2: the contract suite loads a model")
def test_without_cuda_or_exllamav2_the_error_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as raised:
        ExLlamaV2Backend(make_model_folder(tmp_path))
    message = str(raised.value)
    assert "ExLlamaV2 needs an NVIDIA GPU with CUDA" in message and "pip install 'deskpilot[gpu]'" in message
    assert all(problem in message for problem in _MISSING), message


# -- log-probabilities ---------------------------------------------------------------------------------------


class _SamplerLikeJob:
    """Stands in for ExLlamaV2DynamicJob.receive_logits: samples token 0 after editing the logits in place,
    as the sampler does (repetition penalty, the filter's mask)."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def receive_logits(self, logits: torch.Tensor) -> tuple[Any, ...]:
        logits[0, 0, 0] += 100.0
        return torch.tensor([[0]]), None, None, None, False


def test_a_scored_token_gets_the_log_probability_of_the_raw_logits() -> None:
    job_class = _scoring_job_class(_SamplerLikeJob)
    raw = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 50.0]]])  # the last column is padding past the vocabulary
    scored = job_class(scored=True, vocab_size=4, max_new_tokens=3)
    assert scored.kwargs == {"max_new_tokens": 3}
    scored.receive_logits(raw.clone())
    expected = float(torch.log_softmax(torch.tensor([1.0, 2.0, 3.0, 4.0]), dim=-1)[0])
    assert list(scored.scores) == [pytest.approx(expected)]
    plain = job_class(scored=False, vocab_size=4)
    plain.receive_logits(raw.clone())
    assert plain.scores is None


# -- the driver thread, against a scripted generator ---------------------------------------------------------


class ScriptedJob:
    def __init__(self, pieces: list[str], *, end: str = "max_new_tokens", scores: deque[float] | None = None):
        self.pieces = pieces
        self.end = end
        self.scores = scores
        self.steps = 0  # forward passes that produced a result for this job


class ScriptedGenerator:
    """Stands in for ExLlamaV2DynamicGenerator: one token per job per `iterate()`, ~2 ms a pass."""

    def __init__(self, *, fail_at: int | None = None) -> None:
        self.jobs: dict[int, ScriptedJob] = {}
        self.cancelled: list[ScriptedJob] = []
        self.cleared = 0
        self.fail_at = fail_at
        self.passes = 0
        self.thread: threading.Thread | None = None

    def enqueue(self, job: ScriptedJob) -> int:
        serial = len(self.jobs) + len(self.cancelled) + 100
        self.jobs[serial] = job
        return serial

    def cancel(self, job: ScriptedJob) -> None:
        serial = next(s for s, j in self.jobs.items() if j is job)
        del self.jobs[serial]
        self.cancelled.append(job)

    def clear_queue(self) -> None:
        self.cleared += 1
        self.jobs.clear()

    def iterate(self) -> list[dict[str, Any]]:
        self.thread = threading.current_thread()
        self.passes += 1
        if self.fail_at is not None and self.passes >= self.fail_at:
            raise AssertionError("Filter excluded all tokens")
        time.sleep(0.002)
        results = []
        for serial, job in list(self.jobs.items()):
            results.append(self._result(serial, job))
            if results[-1]["eos"]:
                del self.jobs[serial]
        return results

    def _result(self, serial: int, job: ScriptedJob) -> dict[str, Any]:
        job.steps += 1
        if job.steps == 1:
            return {"job": job, "stage": "prefill", "eos": False, "serial": serial, "curr_progress": 9}
        index = job.steps - 2
        piece = job.pieces[index % len(job.pieces)]
        last = index == len(job.pieces) - 1 and job.end != "never"
        result: dict[str, Any] = {"job": job, "stage": "streaming", "eos": last, "serial": serial}
        if (
            last and job.end == "stop_token"
        ):  # the generator releases nothing itself; held text comes under held
            held = {"text": piece + "</s>", "token_ids": torch.tensor([[index, 2]])}
            return {**result, "eos_reason": "stop_token", "held": held, "eos_triggering_token_str": "</s>"}
        if piece:
            result["text"] = piece
        result["token_ids"] = torch.tensor([[index]])
        return {**result, "eos_reason": job.end} if last else result


async def _collect(driver: _Driver, job: ScriptedJob, request: GenerationRequest) -> list[Token | Finished]:
    return [item async for item in driver.run(job, lambda put: _StreamHandler(request, 9, job.scores, put))]


def _usage(items: list[Token | Finished]) -> tuple[int, int, str]:
    """(prompt tokens, completion tokens, finish reason) of the one `Finished`, which comes last."""
    assert isinstance(items[-1], Finished) and not any(isinstance(i, Finished) for i in items[:-1])
    usage = items[-1].usage
    return usage.prompt_tokens, usage.completion_tokens, usage.finish_reason


def _request(**kw: Any) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", "Tell me about lighthouses."),), **kw)


@pytest.fixture
def generator() -> ScriptedGenerator:
    return ScriptedGenerator()


@pytest.fixture
def driver(generator: ScriptedGenerator) -> Any:
    running = _Driver(generator)
    yield running
    running.close()


@pytest.mark.anyio
async def test_results_become_tokens_then_one_finished_with_usage(driver: _Driver) -> None:
    items = await _collect(driver, ScriptedJob(["The", " keeper", " slept"]), _request(max_tokens=3))
    assert [i.text for i in items if isinstance(i, Token)] == ["The", " keeper", " slept"]
    assert _usage(items) == (9, 3, "length")


@pytest.mark.anyio
async def test_a_stop_token_releases_the_held_text_and_is_not_counted(driver: _Driver) -> None:
    items = await _collect(driver, ScriptedJob(["The", " end", "\n"], end="stop_token"), _request())
    assert "".join(i.text for i in items if isinstance(i, Token)) == "The end\n"  # "</s>" is not output
    assert _usage(items) == (9, 3, "stop")


@pytest.mark.anyio
async def test_merged_and_silent_tokens_carry_their_log_probabilities(driver: _Driver) -> None:
    """A token without text (a special token) hands its log-probability to the next text; at the stop
    token, the stop token's own score is dropped."""
    scores = deque([-0.5, -0.25, -1.0, -2.0, -4.0])
    job = ScriptedJob(["A", "", "B", "C"], end="stop_token", scores=scores)
    tokens = [i for i in await _collect(driver, job, _request(logprobs=True)) if isinstance(i, Token)]
    assert [(t.text, t.logprob) for t in tokens] == [("A", -0.5), ("B", -1.25), ("C", -2.0)]


@pytest.mark.anyio
async def test_closing_the_stream_takes_the_job_out_before_aclose_returns(
    driver: _Driver, generator: ScriptedGenerator
) -> None:
    job = ScriptedJob(["word "], end="never")
    stream = driver.run(job, lambda put: _StreamHandler(_request(max_tokens=300), 9, None, put))
    seen = [await stream.__anext__() for _ in range(3)]
    assert all(isinstance(t, Token) for t in seen)
    t0 = time.perf_counter()
    await stream.aclose()
    assert time.perf_counter() - t0 < 0.5 and generator.cancelled == [job]
    steps = job.steps
    await asyncio.sleep(0.05)
    assert job.steps == steps  # nothing more was decoded for it
    assert isinstance((await _collect(driver, ScriptedJob(["ok"]), _request()))[-1], Finished)


@pytest.mark.anyio
async def test_a_cancelled_task_also_takes_its_job_out(driver: _Driver, generator: ScriptedGenerator) -> None:
    job = ScriptedJob(["word "], end="never")

    async def consume() -> None:
        async for _ in driver.run(job, lambda put: _StreamHandler(_request(), 9, None, put)):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert generator.cancelled == [job]


@pytest.mark.anyio
async def test_the_stop_pattern_ends_the_job_at_its_first_match(
    driver: _Driver, generator: ScriptedGenerator
) -> None:
    pattern = r"(?:\S+\s+){3}\S"
    job = ScriptedJob(["one ", "two ", "three ", "four ", "five "], end="never")
    items = await _collect(driver, job, _request(stop_pattern=pattern))
    tokens = [i.text for i in items if isinstance(i, Token)]
    assert tokens == ["one ", "two ", "three ", "four "] and generator.cancelled == [job]
    assert _usage(items) == (9, 4, "stop")


@pytest.mark.anyio
async def test_a_failing_generator_fails_its_streams_and_the_driver_goes_on() -> None:
    generator = ScriptedGenerator(fail_at=3)
    driver = _Driver(generator)
    try:
        with pytest.raises(
            BackendError, match="ExLlamaV2 failed: AssertionError: Filter excluded all tokens"
        ):
            await _collect(driver, ScriptedJob(["a", "b", "c", "d"]), _request())
        assert generator.cleared == 1
        generator.fail_at = None
        assert isinstance((await _collect(driver, ScriptedJob(["ok"]), _request()))[-1], Finished)
    finally:
        driver.close()


@pytest.mark.anyio
async def test_closing_the_driver_ends_live_streams_and_refuses_new_jobs(
    generator: ScriptedGenerator,
) -> None:
    driver = _Driver(generator)
    stream = driver.run(
        ScriptedJob(["word "], end="never"), lambda put: _StreamHandler(_request(), 9, None, put)
    )
    await stream.__anext__()
    await asyncio.to_thread(driver.close)
    with pytest.raises(BackendError, match="the backend was closed"):
        async for _ in stream:
            pass
    with pytest.raises(BackendError, match="the backend is closed"):
        await _collect(driver, ScriptedJob(["late"]), _request())
    assert generator.thread is not None and not generator.thread.is_alive()


@pytest.mark.anyio
async def test_prefill_reports_the_prompt_cached_and_stops_when_asked(
    driver: _Driver, generator: ScriptedGenerator
) -> None:
    done = [
        c async for c in driver.run(ScriptedJob(["x"]), lambda put: _PrefillHandler(12, lambda: False, put))
    ]
    assert done == [11]  # all but the last prompt token, which the generation evaluates first
    stop = threading.Event()
    job = ScriptedJob(["x"], end="never")

    def should_stop() -> bool:
        if job.steps >= 1:  # after the first prefill pass someone is waiting for the model
            stop.set()
        return stop.is_set()

    stopped = [c async for c in driver.run(job, lambda put: _PrefillHandler(12, should_stop, put))]
    assert stopped == [9] and generator.cancelled == [job]


# -- the JSON Schema enforcer, on the embedded SmolLM2's vocabulary ------------------------------------------

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


class Vocabulary:
    """The embedded model's tokenizer (llama.cpp, vocabulary only), as lm-format-enforcer's tokenizer data:
    what `build_token_enforcer_tokenizer_data` builds from an ExLlamaV2 tokenizer (id, text, word start)."""

    def __init__(self) -> None:
        from llama_cpp import Llama
        from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData

        from deskpilot.inference.llama import embedded_model_path

        self.llm = Llama(model_path=str(embedded_model_path()), vocab_only=True, verbose=False)
        self.eos = self.llm.token_eos()
        regular = []
        for token in range(self.llm.n_vocab()):
            text = self.llm.detokenize([token]).decode("utf-8", errors="replace")
            if token != self.eos and text:
                regular.append((token, text, text.startswith(" ")))
        self.data = TokenEnforcerTokenizerData(regular, self.decode, self.eos, False, self.llm.n_vocab())
        self.blank = _blank_tokens(self.data)

    def decode(self, tokens: list[int]) -> str:
        return self.llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def tokens(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=False))

    def enforcer(self, schema: dict[str, Any]) -> _JsonEnforcer:
        from lmformatenforcer import JsonSchemaParser

        return _JsonEnforcer(self.data, self.blank, JsonSchemaParser(schema))

    def walk(self, enforcer: _JsonEnforcer, text: str) -> None:
        """Feed `text`'s tokens, each checked against what the enforcer allows at its step."""
        for token in self.tokens(text):
            allowed, ending = enforcer.next_tokens()
            assert token in allowed and not ending, (self.decode(enforcer.tokens), self.decode([token]))
            enforcer.tokens.append(token)

    def allows(self, enforcer: _JsonEnforcer, text: str) -> bool:
        """Whether the first token of `text` may come next."""
        return self.tokens(text)[0] in enforcer.next_tokens()[0]


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return Vocabulary()


@pytest.mark.model
def test_json_the_schema_accepts_passes_and_then_only_the_end_may_follow(vocabulary: Vocabulary) -> None:
    enforcer = vocabulary.enforcer(KEEPER_SCHEMA)
    vocabulary.walk(enforcer, '{"keeper": "Ann Grey", "mood": "calm", "ships": [1, 22]}')
    assert enforcer.next_tokens() == ([vocabulary.eos], True)  # ended at once: no trailing whitespace


@pytest.mark.model
def test_json_the_schema_refuses_is_not_allowed(vocabulary: Vocabulary) -> None:
    enforcer = vocabulary.enforcer(KEEPER_SCHEMA)
    vocabulary.walk(enforcer, '{"keeper": null, "mood": "')
    assert vocabulary.allows(enforcer, "calm") and not vocabulary.allows(enforcer, "happy")  # the enum
    enforcer = vocabulary.enforcer(KEEPER_SCHEMA)
    vocabulary.walk(enforcer, '{"keeper": null, "mood": "stormy", "ships": [')
    assert vocabulary.allows(enforcer, "1") and not vocabulary.allows(enforcer, '"')  # integers only
    vocabulary.walk(enforcer, "1, 2, 3")
    assert vocabulary.allows(enforcer, "]") and not vocabulary.allows(enforcer, ",")  # maxItems 3
    enforcer = vocabulary.enforcer(KEEPER_SCHEMA)
    vocabulary.walk(enforcer, '{"')
    assert not vocabulary.allows(enforcer, "mood")  # required keys in the schema's order
    enforcer = vocabulary.enforcer(KEEPER_SCHEMA)
    vocabulary.walk(enforcer, "{\n")
    assert not vocabulary.allows(enforcer, "\n") and not vocabulary.allows(enforcer, " ")  # compact


@pytest.mark.model
def test_a_root_enum_ends_with_the_value(vocabulary: Vocabulary) -> None:
    enforcer = vocabulary.enforcer({"enum": ["invoice", "receipt", "other"]})
    vocabulary.walk(enforcer, '"invoice"')
    assert enforcer.next_tokens() == ([vocabulary.eos], True)


@pytest.mark.model
def test_the_filter_speaks_the_generators_filter_interface(vocabulary: Vocabulary) -> None:
    """What exllamav2's sampler calls: begin, then next (sorted lists where the base class says it takes
    them, sets before), and feed with each sampled token as a (1, 1) tensor."""

    class FilterBase:  # ExLlamaV2Filter's constructor and its list flag (exllamav2 0.2.3+)
        allow_return_type_list = True

        def __init__(self, model: Any, tokenizer: Any) -> None:
            self.model, self.tokenizer = model, tokenizer

    json_filter = _json_filter_class(FilterBase)(None, None, vocabulary.enforcer({"enum": ["other"]}))
    json_filter.begin("")
    allowed, end = json_filter.next()
    assert isinstance(allowed, list) and allowed == sorted(allowed) and end == []
    for token in vocabulary.tokens('"other"'):  # the sampler asks next() before each token it samples
        assert token in json_filter.next()[0]
        json_filter.feed(torch.tensor([[token]]))
    assert json_filter.next() == ([vocabulary.eos], [vocabulary.eos])
    FilterBase.allow_return_type_list = False
    assert json_filter.next() == ({vocabulary.eos}, {vocabulary.eos})
    json_filter.begin("")  # a new output
    assert vocabulary.eos not in json_filter.next()[0]

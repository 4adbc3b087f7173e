"""What `deskpilot eval extraction` measures: the model alone, the extractors alone, and the hybrid.

The model runs on a profile's backend directly (no lineage: an evaluation is not the user's work). Its raw
generations may be kept in a JSON Lines file (`--generations`): fitting and comparing calibrations is then
a matter of seconds, and a generation is reused only for the same document and the same request (its
digest), so a changed prompt, grammar or document is generated again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from deskpilot.inference import Finished, Token, Usage
from deskpilot.inference.extraction import (
    ExtractionResult,
    ExtractionSchema,
    Facts,
    Generated,
    extraction_job,
    find_facts,
    finish_extraction,
)
from deskpilot.inference.extraction.evaluate import Example

__all__ = ["Generation", "ModelOutcome", "ReplayBackend", "generate_all", "request_digest"]


class Generation(msgspec.Struct, kw_only=True):
    """One stored generation: the document, the request it answered (digest) and what the model wrote."""

    id: str
    request: str
    text: str
    tokens: list[tuple[str, float | None]]
    finish_reason: str
    completion_tokens: int
    seconds: float


class ModelOutcome(msgspec.Struct, kw_only=True):
    example: Example
    result: ExtractionResult
    facts: Facts
    generation: Generation
    reused: bool


def request_digest(request: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(request)).hexdigest()[:16]


def _stored(path: Path | None) -> dict[tuple[str, str], Generation]:
    if path is None or not path.is_file():
        return {}
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            g = msgspec.json.decode(line, type=Generation)
            found[(g.id, g.request)] = g
    return found


async def _generate(backend: Any, example: Example, digest: str, request: Any) -> Generation:
    started = time.perf_counter()
    tokens: list[Token] = []
    usage = None
    async for item in backend.stream(request):
        if isinstance(item, Finished):
            usage = item.usage
        else:
            tokens.append(item)
    if usage is None:
        raise RuntimeError(f"{example.id}: the backend ended without reporting usage")
    return Generation(
        id=example.id,
        request=digest,
        text="".join(t.text for t in tokens),
        tokens=[(t.text, t.logprob) for t in tokens],
        finish_reason=usage.finish_reason,
        completion_tokens=usage.completion_tokens,
        seconds=round(time.perf_counter() - started, 3),
    )


async def generate_all(
    schema: ExtractionSchema,
    examples: Sequence[Example],
    backend: Any,
    *,
    review_threshold: float,
    cache: Path | None = None,
    progress: Callable[[int, ModelOutcome], None] | None = None,
) -> list[ModelOutcome]:
    """The model's finished result for every example, generating only what `cache` does not hold."""
    stored = _stored(cache)
    outcomes = []
    for number, example in enumerate(examples, start=1):
        job = extraction_job(
            schema,
            text=example.text,
            context_length=backend.info.context_length,
            count_tokens=backend.count_tokens,
        )
        digest = request_digest(job.request)
        generation = stored.get((example.id, digest))
        reused = generation is not None
        if generation is None:
            generation = await _generate(backend, example, digest, job.request)
            if cache is not None:
                with cache.open("a", encoding="utf-8") as out:
                    out.write(msgspec.json.encode(generation).decode() + "\n")
        generated = Generated(
            text=generation.text,
            tokens=[Token(text, logprob) for text, logprob in generation.tokens],
            finish_reason=generation.finish_reason,
        )
        result = finish_extraction(
            schema, text=example.text, generated=generated, review_threshold=review_threshold
        )
        outcome = ModelOutcome(
            example=example,
            result=result,
            facts=find_facts(example.text),
            generation=generation,
            reused=reused,
        )
        outcomes.append(outcome)
        if progress is not None:
            progress(number, outcome)
    return outcomes


class ReplayBackend:
    """A backend that answers a request it answered before from stored generations (`Generation`s in a
    JSON Lines file, by request digest), and passes any other to the real one, storing what it wrote.

    The simulated reviewer uses it to replay an evaluation's generations through the HTTP app: the model's
    output for the same request is the same (greedy decoding), so replaying it measures the same system in
    a fraction of the time. A request that changed (a prompt, a grammar, a document) is generated anew."""

    def __init__(self, load: Callable[[], Any], cache: Path | None) -> None:
        self._load, self._real, self.cache = load, None, cache
        self.stored = {key[1]: g for key, g in _stored(cache).items()}
        self.replayed = self.generated = 0

    @property
    def real(self) -> Any:
        if self._real is None:
            self._real = self._load()
        return self._real

    @property
    def info(self) -> Any:
        return self.real.info

    def count_tokens(self, text: str) -> int:
        return int(self.real.count_tokens(text))

    async def prepare(self, request: Any, should_stop: Callable[[], bool]) -> int:
        if request_digest(request) in self.stored:
            return 0
        return int(await self.real.prepare(request, should_stop))

    async def stream(self, request: Any) -> AsyncGenerator[Token | Finished, None]:
        digest = request_digest(request)
        stored = self.stored.get(digest)
        if stored is None:
            self.generated += 1
            async for item in self.real.stream(request):
                yield item
            return
        self.replayed += 1
        for text, logprob in stored.tokens:
            yield Token(text, logprob)
        finish: Literal["stop", "length"] = "stop" if stored.finish_reason == "stop" else "length"
        yield Finished(
            Usage(prompt_tokens=0, completion_tokens=stored.completion_tokens, finish_reason=finish)
        )

    def close(self) -> None:
        if self._real is not None:
            self._real.close()

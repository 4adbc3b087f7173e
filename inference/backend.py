"""The one seam every model sits behind.

A backend only streams: it yields `Token`s then exactly one `Finished`, and knows nothing of HTTP, lineage or
timing (the caller records). Closing the stream early (`aclose()`, or cancellation of the task
iterating it) must stop decoding before `aclose()` returns, so that the caller can hand the model to the next
request the moment it gets control back.

Everything a caller may ask of a backend is on this protocol, so no call site probes for optional methods.
`tests/contracts/test_backend.py` runs one suite over every implementation: the scripted fake beside this
module (`fake.py`), llama.cpp, and the next engine added.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol, runtime_checkable

from deskpilot.inference._types import BackendInfo, Finished, GenerationRequest, Token

__all__ = ["Backend", "BackendError", "ContextOverflow"]


class BackendError(RuntimeError):
    """The model could not run this request (bad weights, backend crash)."""


class ContextOverflow(BackendError):
    """The prompt plus `max_tokens` do not fit the model's context window."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int) -> None:
        super().__init__(
            f"input too long: {prompt_tokens} prompt tokens + {max_tokens} to generate exceed the model's "
            f"context of {context_length} tokens"
        )
        self.prompt_tokens = prompt_tokens


@runtime_checkable
class Backend(Protocol):
    @property
    def info(self) -> BackendInfo: ...

    def stream(self, request: GenerationRequest) -> AsyncGenerator[Token | Finished, None]:
        """Stream the generation: `Token`s, then one `Finished` with usage."""
        ...

    async def prepare(self, request: GenerationRequest, should_stop: Callable[[], bool]) -> int:
        """Do ahead of time what `stream(request)` would do first (evaluate the prompt), stopping early
        when `should_stop()`. Returns the prompt tokens now cached; 0 for backends that cannot cache.
        Raises `ContextOverflow` for a request `stream` would refuse."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes inside a prompt, for budgeting input to the context (a template adds its own
        around it). Cheap and safe to call while a generation runs."""
        ...

    def close(self) -> None:
        """Release the model (weights, threads, temporary files). Safe to call twice; `stream` and
        `prepare` raise `BackendError` afterwards."""
        ...

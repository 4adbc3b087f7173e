"""Wire-neutral types of the inference contract: what a backend is asked, what it streams, what it is."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["BackendInfo", "Finished", "GenerationRequest", "Message", "Token", "Usage"]


class Message(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


class GenerationRequest(msgspec.Struct, frozen=True, kw_only=True):
    messages: tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 0.2
    top_p: float = 0.95
    repeat_penalty: float = 1.1
    seed: int = 0
    stop: tuple[str, ...] = ()
    # A JSON Schema the output must follow (constrained decoding where the backend supports it).
    json_schema: dict[str, Any] | None = None
    # Ask for each token's log-probability (`Token.logprob`); costs a little per token, so only on request.
    logprobs: bool = False
    # A regular expression: generation ends as soon as the text so far matches it (`re.search`), keeping
    # the text as generated. For conditions no stop string can express, such as a model repeating itself.
    stop_pattern: str | None = None

    def parameters(self) -> dict[str, Any]:
        """The sampling parameters, as recorded in lineage."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
            "stop": list(self.stop),
            "json_schema": self.json_schema is not None,
            "logprobs": self.logprobs,
            "stop_pattern": self.stop_pattern,
        }


class Token(msgspec.Struct, frozen=True):
    """A text delta. Usually one model token; a backend may merge a few.

    `logprob` is the natural log of the probability the model gave this text (summed over merged tokens),
    under the model's own distribution before constrained decoding or sampling settings reshape it; None
    unless the request asked for `logprobs` and the backend can tell.
    """

    text: str
    logprob: float | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length", "cancelled"]


class Finished(msgspec.Struct, frozen=True):
    """The last item of every stream."""

    usage: Usage


class BackendInfo(msgspec.Struct, frozen=True, kw_only=True):
    backend: str  # "llama.cpp", "exllamav2", "openai", "fake"
    model_id: str
    weights_digest: str  # "sha256:<hex>"
    context_length: int
    cost_per_1k_tokens: float = 0.0  # local models cost nothing per token
    # A remote model (OpenAI-compatible server): the model name the server reports serving, and the
    # `system_fingerprint` of its last answer when it gives one (its build and configuration).
    served_model: str | None = None
    system_fingerprint: str | None = None

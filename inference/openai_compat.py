"""A model behind an OpenAI-compatible HTTP server (vLLM, TabbyAPI, llama.cpp's server, Ollama, LM Studio,
hosted providers): streaming chat completions over httpx.

`POST {base_url}/chat/completions` with `stream: true`; the answer is server-sent events, one JSON chunk per
`data:` line, ended by `data: [DONE]`. Each chunk's text delta becomes a `Token`, and one `Finished` ends the
stream.

- Cancellation: each generation runs in its own `httpx.AsyncClient` context, so closing the stream
  (`aclose()`, or cancelling the task iterating it) leaves that context and closes the upstream response and
  its connection before `aclose()` returns; the server sees the client go and stops decoding.
- Retries: 429, 5xx, connection errors, timeouts and a stream that breaks before its first token are retried
  with exponential backoff and full jitter, at least as long as a `Retry-After` header asks. After the first
  token nothing is retried (the caller already has part of the answer): the stream raises `BackendError`,
  never ends quietly with a truncated answer. Connect and read timeouts bound a dead or stalled server.
- TLS is verified (httpx's default, certifi's roots); the API key is passed in by the caller.
- JSON Schema (`json_schema` mode): `"response_format"` sends OpenAI's
  `{"type": "json_schema", ...}` (vLLM, hosted providers, llama.cpp's C++ server); `"json_object"` sends
  `{"type": "json_object", "schema": ...}`, the form llama-cpp-python's server understands; `"validate"`
  constrains nothing: the output is buffered, validated against the schema, and repaired once (one more
  request showing the model its output and the validation error), and only valid JSON is streamed out.
- `count_tokens`: exact through a llama.cpp-style tokenize endpoint (`tokenize_url`, e.g.
  `http://host:port/extras/tokenize` for llama-cpp-python's server); without one, an approximation
  (~4 characters a token), since the OpenAI API has no tokenizer. The call is synchronous, as the protocol
  asks, so with a tokenize endpoint it is one HTTP round trip (cached per text).
- `prepare`: with `prefix_caching` (the server keeps the prompt's KV cache between requests: llama.cpp,
  vLLM with prefix caching), one request for a single token evaluates the prompt ahead of time; otherwise it
  does nothing and returns 0.
- `BackendInfo.weights_digest` cannot be a digest of weights we never see: it is the SHA-256 of the base
  URL and model name, so it changes when the profile points elsewhere; `served_model` and
  `system_fingerprint` record what the server said it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Literal

import httpx
import msgspec

from deskpilot.inference._types import BackendInfo, Finished, GenerationRequest, Message, Token, Usage
from deskpilot.inference.backend import BackendError, ContextOverflow

__all__ = ["JsonSchemaMode", "OpenAICompatBackend"]

JsonSchemaMode = Literal["response_format", "json_object", "validate"]
_FinishReason = Literal["stop", "length", "cancelled"]
# Statuses worth another try: rate limited, or the server (or a proxy before it) failing for now.
_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
# Failures of the connection itself, before or during the answer.
_TRANSPORT_ERRORS = (httpx.TransportError,)
_CHARS_PER_TOKEN = 4  # the approximation where no tokenize endpoint exists
_TOKEN_CACHE = 512  # texts whose exact counts are kept
# A server's message for an input over the context (OpenAI, vLLM, llama-cpp-python's server).
_OVERFLOW = re.compile(
    r"maximum context length is (\d+) tokens.*?(\d+) in the messages", re.IGNORECASE | re.DOTALL
)
_PATTERN_WINDOW = 4000


class _Broken(Exception):
    """An attempt failed in a way a new attempt may fix (before the first token only)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Attempt:
    """What one streamed answer produced."""

    def __init__(self) -> None:
        self.tokens = 0  # content deltas (about one model token each)
        self.text = ""
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None


class OpenAICompatBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        context_length: int,
        api_key: str | None = None,
        json_schema: JsonSchemaMode = "validate",
        logprobs: bool = False,
        prefix_caching: bool = False,
        tokenize_url: str | None = None,
        repeat_penalty_field: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
        cost_per_1k_tokens: float = 0.0,
    ) -> None:
        """`base_url` ends before `/chat/completions` (e.g. `https://api.example.com/v1`). `logprobs`: the
        server returns token log-probabilities when asked. `repeat_penalty_field`: the request field the
        server reads `GenerationRequest.repeat_penalty` from (`repeat_penalty` for llama.cpp,
        `repetition_penalty` for vLLM and TabbyAPI); None sends none, since OpenAI's own API refuses
        unknown fields."""
        self._base = base_url.rstrip("/")
        self._model = model
        self._where = f"{model} at {self._base}"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._json_mode: JsonSchemaMode = json_schema
        self._logprobs = logprobs
        self._prefix_caching = prefix_caching
        self._tokenize_url = tokenize_url
        self._repeat_field = repeat_penalty_field
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._max_retries, self._backoff, self._max_backoff = max_retries, backoff, max_backoff
        self._max_retry_after = max_retry_after
        self._tls = httpx.create_ssl_context()  # once: loading the CA roots takes ~20 ms
        self._sync: httpx.Client | None = None
        self._counts: dict[str, int] = {}
        self._prepared: dict[bytes, int] = {}  # the server's prompt tokens, by prepared messages
        identity = f"openai\n{self._base}\n{model}".encode()
        self._info = BackendInfo(
            backend="openai",
            model_id=model,
            weights_digest=f"sha256:{hashlib.sha256(identity).hexdigest()}",
            context_length=context_length,
            cost_per_1k_tokens=cost_per_1k_tokens,
        )
        self._closed = False

    @property
    def info(self) -> BackendInfo:
        return self._info

    # -- tokens ----------------------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Exact through `tokenize_url`, else about 4 characters a token (an approximation)."""
        self._check_open()
        if not text:
            return 0
        if self._tokenize_url is None:
            return -(-len(text) // _CHARS_PER_TOKEN)
        if text not in self._counts:
            if self._sync is None:
                self._sync = httpx.Client(timeout=self._timeout, verify=self._tls, headers=self._headers)
            try:
                response = self._sync.post(self._tokenize_url, json={"input": text, "model": self._model})
                response.raise_for_status()
                count = len(msgspec.json.decode(response.content)["tokens"])
            except (httpx.HTTPError, KeyError, TypeError, msgspec.DecodeError) as exc:
                raise BackendError(
                    f"{self._where}: cannot count tokens at {self._tokenize_url}: {exc}"
                ) from exc
            if len(self._counts) >= _TOKEN_CACHE:
                self._counts.pop(next(iter(self._counts)))
            self._counts[text] = count
        return self._counts[text]

    def _prompt_floor(self, request: GenerationRequest) -> int:
        """The prompt tokens the messages take at least (the server's chat template adds more)."""
        return sum(self.count_tokens(m.content) for m in request.messages)

    def _check_fits(self, request: GenerationRequest) -> int:
        floor = self._prompt_floor(request)
        if floor + request.max_tokens > self._info.context_length:
            raise ContextOverflow(floor, request.max_tokens, self._info.context_length)
        return floor

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sync is not None:
            self._sync.close()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"the backend is closed ({self._where})")

    # -- prepare ---------------------------------------------------------------------------------------------

    async def prepare(self, request: GenerationRequest, should_stop: Callable[[], bool]) -> int:
        """With `prefix_caching`, ask for one token so that the server evaluates (and keeps) the prompt;
        returns the prompt tokens the server reported. Without it, or when `should_stop()`, does nothing
        and returns 0. The request is not interrupted once sent."""
        self._check_open()
        self._check_fits(request)
        if not self._prefix_caching or should_stop():
            return 0
        body = self._body(request, stream=False)
        body["max_tokens"] = 1
        async with self._client() as client:
            response = await self._send(client, body)
            try:
                answer = msgspec.json.decode(await response.aread())
            finally:
                await response.aclose()
        prompt = int((answer.get("usage") or {}).get("prompt_tokens") or 0)
        self._prepared[_messages_key(request.messages)] = prompt
        return prompt

    # -- streaming -------------------------------------------------------------------------------------------

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Token | Finished, None]:
        self._check_open()
        floor = self._check_fits(request)
        if request.json_schema is not None and self._json_mode == "validate":
            async for item in self._validated(request, floor):
                yield item
            return
        attempt = _Attempt()
        pattern = re.compile(request.stop_pattern) if request.stop_pattern else None
        reason: _FinishReason | None = None
        async with contextlib.aclosing(self._tokens(self._body(request, stream=True), attempt)) as tokens:
            async for token in tokens:
                yield token
                if pattern is not None and pattern.search(attempt.text[-_PATTERN_WINDOW:]):
                    reason = "stop"  # leaving the block closes the upstream stream
                    break
        yield Finished(self._usage(request, floor, attempt, reason))

    async def _validated(self, request: GenerationRequest, floor: int) -> AsyncIterator[Token | Finished]:
        """Buffer the answer, validate it against the schema, repair once; stream only valid JSON."""
        import jsonschema_rs

        schema = request.json_schema
        assert schema is not None
        attempt = _Attempt()
        pieces = [t async for t in self._tokens(self._body(request, stream=True), attempt)]
        problem = _schema_problem(jsonschema_rs, schema, attempt.text)
        if problem is not None:
            repair = Message(
                "user",
                f"Your answer does not follow the JSON Schema: {problem}. Answer again with only JSON that "
                f"follows this schema:\n{msgspec.json.encode(schema).decode()}",
            )
            fixed = msgspec.structs.replace(
                request, messages=(*request.messages, Message("assistant", attempt.text), repair)
            )
            attempt = _Attempt()
            pieces = [t async for t in self._tokens(self._body(fixed, stream=True), attempt)]
            problem = _schema_problem(jsonschema_rs, schema, attempt.text)
            if problem is not None:
                raise BackendError(
                    f"{self._where}: the answer does not follow the JSON Schema after one repair: {problem}"
                )
        for piece in pieces:
            yield piece
        yield Finished(self._usage(request, floor, attempt, None))

    def _usage(
        self, request: GenerationRequest, floor: int, attempt: _Attempt, reason: _FinishReason | None
    ) -> Usage:
        """The server's usage when it sends one; otherwise the prompt tokens a `prepare` measured, or the
        messages' own tokens (a floor: the chat template adds some), and one token per content delta."""
        if reason is None:
            reason = "length" if attempt.finish == "length" else "stop"
        usage = attempt.usage or {}
        prompt = usage.get("prompt_tokens") or self._prepared.get(_messages_key(request.messages), floor)
        completion = usage.get("completion_tokens") or attempt.tokens
        if reason == "length" and not usage:
            completion = request.max_tokens  # the server stopped at the limit
        return Usage(prompt_tokens=int(prompt), completion_tokens=int(completion), finish_reason=reason)

    def _body(self, request: GenerationRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stream": stream,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if self._repeat_field is not None:
            body[self._repeat_field] = request.repeat_penalty
        if request.logprobs and self._logprobs:
            # llama-cpp-python's server returns none without `top_logprobs`; 1 is the cheapest others accept.
            body["logprobs"], body["top_logprobs"] = True, 1
        if stream:
            body["stream_options"] = {"include_usage": True}
        schema = request.json_schema
        if schema is not None and self._json_mode == "response_format":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True},
            }
        elif schema is not None and self._json_mode == "json_object":
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        """A client per generation: leaving it (a closed stream, a cancelled task) closes its connections."""
        async with httpx.AsyncClient(
            timeout=self._timeout, verify=self._tls, headers=self._headers
        ) as client:
            yield client

    async def _tokens(self, body: dict[str, Any], attempt: _Attempt) -> AsyncGenerator[Token, None]:
        """The answer's text deltas, retrying what fails before the first one."""
        failures = 0
        async with self._client() as client:
            while True:
                try:
                    response = await self._send_once(client, body)
                    async with contextlib.aclosing(self._read(response, attempt)) as deltas:
                        async for token in deltas:
                            yield token
                    return
                except _Broken as exc:
                    if attempt.tokens:
                        raise BackendError(
                            f"{self._where}: the answer broke off after {attempt.tokens} tokens: {exc}"
                        ) from exc
                    failures += 1
                    await self._wait_or_fail(failures, exc)

    async def _send(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        """The response to `body` with a 200 status, its body not yet read; retries what may pass."""
        failures = 0
        while True:
            try:
                return await self._send_once(client, body)
            except _Broken as exc:
                failures += 1
                await self._wait_or_fail(failures, exc)

    async def _wait_or_fail(self, failures: int, exc: _Broken) -> None:
        if failures > self._max_retries:
            raise BackendError(f"{self._where}: {exc} (gave up after {failures} attempts)") from exc
        delay = random.uniform(0, min(self._max_backoff, self._backoff * 2 ** (failures - 1)))
        if exc.retry_after is not None:
            if exc.retry_after > self._max_retry_after:
                raise BackendError(f"{self._where}: {exc}; the server asks to wait {exc.retry_after:.0f} s")
            delay = max(delay, exc.retry_after)
        await asyncio.sleep(delay)

    async def _send_once(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        url = f"{self._base}/chat/completions"
        try:
            response = await client.send(client.build_request("POST", url, json=body), stream=True)
        except httpx.TimeoutException as exc:
            raise _Broken(f"no answer in time ({type(exc).__name__})") from exc
        except _TRANSPORT_ERRORS as exc:
            raise _Broken(f"cannot reach the server ({type(exc).__name__}: {exc})") from exc
        if response.status_code == 200:
            return response
        try:
            detail = (await response.aread()).decode(errors="replace")[:500]
        except _TRANSPORT_ERRORS:
            detail = ""
        finally:
            await response.aclose()
        status = response.status_code
        if status in _RETRY_STATUSES:
            raise _Broken(f"HTTP {status}: {detail}", _retry_after(response.headers.get("retry-after")))
        overflow = _OVERFLOW.search(detail)
        if status == 400 and overflow:
            context, prompt = int(overflow.group(1)), int(overflow.group(2))
            raise ContextOverflow(prompt, int(body.get("max_tokens", 0)), context)
        if status in (401, 403):
            raise BackendError(f"{self._where}: the server refused the API key (HTTP {status}): {detail}")
        raise BackendError(f"{self._where}: HTTP {status}: {detail}")

    async def _read(self, response: httpx.Response, attempt: _Attempt) -> AsyncGenerator[Token, None]:
        """Parse the server-sent events of `response` into tokens, closing it at the end."""
        done = False
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                chunk = _decode_chunk(data, self._where)
                token = self._take(chunk, attempt)
                if token is not None:
                    yield token
        except httpx.TimeoutException as exc:
            raise _Broken(f"the stream stalled ({type(exc).__name__})") from exc
        except _TRANSPORT_ERRORS as exc:
            raise _Broken(f"the stream broke ({type(exc).__name__}: {exc})") from exc
        finally:
            await response.aclose()
        if not done:
            raise _Broken("the stream ended without [DONE]")

    def _take(self, chunk: dict[str, Any], attempt: _Attempt) -> Token | None:
        if chunk.get("error"):
            raise BackendError(f"{self._where}: the server reported an error mid-stream: {chunk['error']}")
        if chunk.get("usage"):
            attempt.usage = chunk["usage"]
        self._note_server(chunk)
        choices = chunk.get("choices") or []
        if not choices:
            return None
        choice = choices[0]
        attempt.finish = choice.get("finish_reason") or attempt.finish
        text = (choice.get("delta") or {}).get("content") or ""
        if not text:
            return None
        logprob = None
        scored = (choice.get("logprobs") or {}).get("content")
        if scored:
            logprob = float(sum(float(entry["logprob"]) for entry in scored))
        attempt.tokens += 1
        attempt.text += text
        return Token(text, logprob)

    def _note_server(self, chunk: dict[str, Any]) -> None:
        served, fingerprint = chunk.get("model"), chunk.get("system_fingerprint")
        info = self._info
        if (served and served != info.served_model) or (
            fingerprint and fingerprint != info.system_fingerprint
        ):
            self._info = msgspec.structs.replace(
                info,
                served_model=served or info.served_model,
                system_fingerprint=fingerprint or info.system_fingerprint,
            )


def _decode_chunk(data: str, where: str) -> dict[str, Any]:
    try:
        chunk = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise BackendError(f"{where}: the server sent a chunk that is not JSON: {data[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise BackendError(f"{where}: the server sent a chunk that is not an object: {data[:200]!r}")
    return chunk


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _schema_problem(validator: Any, schema: dict[str, Any], text: str) -> str | None:
    """Why `text` is not JSON that `schema` accepts; None when it is."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        return f"it is not JSON ({exc})"
    for error in validator.iter_errors(schema, value):
        path = "/".join(str(p) for p in error.instance_path)
        return f"{error.message} (at /{path})"
    return None


def _messages_key(messages: tuple[Message, ...]) -> bytes:
    return hashlib.sha256(msgspec.json.encode(messages)).digest()

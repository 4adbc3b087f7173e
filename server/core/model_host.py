"""The loaded model, its gate, and its loading state.

Loading weights takes time (and a bigger model far longer), but `/healthz` must answer within 3 s of start,
so the model loads on a worker thread after the server is up. Requests that need it wait for it (their
streams send keep-alives meanwhile); `/v1/models` and `/healthz` report `loading`, `ready` or `failed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal

import anyio

from deskpilot.inference import Backend, BackendError, ModelGate

__all__ = ["ModelHost"]

log = logging.getLogger("deskpilot.model")


class ModelHost:
    def __init__(
        self, backend: Backend | Callable[[], Backend], *, max_waiting: int, concurrency: int = 1
    ) -> None:
        self.gate = ModelGate(max_waiting, concurrency=concurrency)
        self._factory: Callable[[], Backend] | None = None
        self._backend: Backend | None = None
        self.error: str | None = None
        # A backend class is a factory (Backend is a runtime protocol, which a class also satisfies).
        if isinstance(backend, Backend) and not isinstance(backend, type):
            self._backend = backend
        else:
            self._factory = backend
        self._ready = asyncio.Event()
        self._loader: asyncio.Task[None] | None = None

    @property
    def state(self) -> Literal["loading", "ready", "failed"]:
        if self._backend is not None:
            return "ready"
        return "failed" if self.error is not None else "loading"

    @property
    def backend(self) -> Backend | None:
        return self._backend

    def context_length(self, configured: int = 4096) -> int:
        """The loaded model's context; before it has loaded, the configured one (the backend re-checks)."""
        return self._backend.info.context_length if self._backend is not None else configured

    def start_loading(self) -> None:
        if self._backend is not None:
            self._ready.set()
        elif self._loader is None:
            self._loader = asyncio.create_task(self._load())

    async def _load(self) -> None:
        assert self._factory is not None
        try:
            self._backend = await anyio.to_thread.run_sync(self._factory)
            info = self._backend.info
            log.info("model ready: %s (%s, %s)", info.model_id, info.backend, info.weights_digest[:19])
        except Exception as exc:
            self.error = str(exc)
            log.error("model failed to load: %s", exc)
        finally:
            self._ready.set()

    def check_available(self) -> None:
        """Refuse before a response starts when the model has failed to load (the API answers 503)."""
        if self.state == "failed":
            raise BackendError(f"the model could not be loaded: {self.error}")

    async def ready(self) -> Backend:
        """The backend once loaded; `BackendError` if loading failed."""
        self.start_loading()
        await self._ready.wait()
        if self._backend is None:
            raise BackendError(f"the model could not be loaded: {self.error}")
        return self._backend

    async def close(self) -> None:
        if self._loader is not None:
            await asyncio.gather(self._loader, return_exceptions=True)
        if self._backend is not None:
            await anyio.to_thread.run_sync(self._backend.close)

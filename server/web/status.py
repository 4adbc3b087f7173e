"""Liveness and the model's state: `/healthz` (the one route open without the token) and `/v1/models`."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from deskpilot.server import __version__
from deskpilot.server.core.wire import Health, ModelInfo, ModelsOut
from deskpilot.server.runs import RunExecutor

__all__ = ["Status"]


class Status(Controller):
    tags = ("status",)

    @get(
        "/healthz",
        summary="Liveness: answers as soon as the server is up, before the model has loaded",
        security=[{}],  # an empty requirement: the one route that needs no token
    )
    async def healthz(self, executor: NamedDependency[RunExecutor]) -> Health:
        return Health(status="ok", version=__version__, model=executor.host.state)

    @get("/v1/models", summary="The loaded model, its state and its queue")
    async def models(self, executor: NamedDependency[RunExecutor]) -> ModelsOut:
        host = executor.host
        models = []
        if host.backend is not None:
            info = host.backend.info
            models.append(
                ModelInfo(
                    id=info.model_id,
                    backend=info.backend,
                    weights_digest=info.weights_digest,
                    context_length=info.context_length,
                    cost_per_1k_tokens=info.cost_per_1k_tokens,
                )
            )
        return ModelsOut(
            state=host.state,
            error=host.error,
            models=models,
            busy=host.gate.busy,
            waiting=host.gate.waiting,
            max_waiting=host.gate.max_waiting,
        )

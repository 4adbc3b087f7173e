"""Liveness, the models and their use: `/healthz` (the one route open without the token), `/v1/models`
(the default model's state and queue, every profile and which task uses which) and `/v1/usage` (tokens
and cost per profile and task, against the budgets)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from deskpilot.server import __version__
from deskpilot.server.core.wire import Health, ModelInfo, ModelsOut, ProfileOut, RouteOut
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.models.usage import UsageReport
from deskpilot.server.runs import RunExecutor

__all__ = ["Status"]


def _profiles(executor: RunExecutor) -> list[ProfileOut]:
    models: ModelRegistry = executor.models
    built = models.built_hosts()
    out = []
    for name, p in models.profiles.items():
        host = built.get(name)
        if p.backend == "openai":
            where = f"{p.model or 'the first model listed'} at {p.base_url}"
        else:
            where = p.path or "the embedded SmolLM2-135M-Instruct"
        out.append(
            ProfileOut(
                name=name,
                backend=p.backend,
                where=where,
                local=models.is_local(name),
                context_length=p.context_length,
                price_in_per_1k=p.price_in_per_1k,
                price_out_per_1k=p.price_out_per_1k,
                pii=p.pii,
                json_schema=p.json_schema if p.backend == "openai" else "grammar",
                logprobs=p.logprobs or p.backend != "openai",
                prefix_caching=p.prefix_caching or p.backend != "openai",
                state=host.state if host is not None else "not_loaded",
                error=host.error if host is not None else None,
                breaker=executor.router.breaker(name).blocked(peek=True),
                api_key_name=p.api_key_name,
            )
        )
    return out


class Status(Controller):
    tags = ("status",)

    @get(
        "/healthz",
        summary="Liveness: answers as soon as the server is up, before the model has loaded",
        security=[{}],  # an empty requirement: the one route that needs no token
    )
    async def healthz(self, executor: NamedDependency[RunExecutor]) -> Health:
        return Health(status="ok", version=__version__, model=executor.host.state)

    @get("/v1/models", summary="The default model, its state and its queue; every profile and route")
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
        routes = [
            RouteOut(task=task, use=list(r.use), rules=[msgspec.to_builtins(rule) for rule in r.rules])
            for task, r in executor.models.routes.items()
        ]
        return ModelsOut(
            state=host.state,
            error=host.error,
            models=models,
            busy=host.gate.busy,
            waiting=host.gate.waiting,
            max_waiting=host.gate.max_waiting,
            profiles=_profiles(executor),
            routes=routes,
        )

    @get("/v1/usage", summary="Tokens and cost today and this month, per model profile and task, and budgets")
    async def usage(self, executor: NamedDependency[RunExecutor]) -> UsageReport:
        return executor.budgets.report()

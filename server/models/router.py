"""Which profiles a request goes to, in order: its route, the route's rules, and what rules a profile out.

For a task the route gives a primary profile and its fallbacks (`[routes.TASK]`, else `[routes.default]`).
A rule may replace that list for long input (`input_over` tokens) or for sensitive input. Then each profile
is kept or skipped, with the reason recorded in lineage:
- sensitive input never goes to a remote profile;
- a profile whose circuit is open (it failed `breaker_failures` times in a row, 3 by default) is skipped
  until `breaker_cool_seconds` have passed, then gets one trial request;
- a profile or task over its daily or monthly budget is skipped.
The executor then tries the profiles in order and moves on when one fails before its first token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from deskpilot.server.core.model_host import ModelHost
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.models.usage import Budgets
from deskpilot.server.settings import ModelProfile, Route

__all__ = ["Breaker", "Candidate", "NoRoute", "Plan", "Router"]


class NoRoute(Exception):
    """No profile may take this request. `code` is "budget_exhausted" (429) or "no_model" (503)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Candidate(NamedTuple):
    name: str
    profile: ModelProfile
    host: ModelHost
    local: bool


class Plan(NamedTuple):
    route: str  # the route key used ("summarize", "default", or "request" for a profile a request named)
    candidates: list[Candidate]
    skipped: list[dict[str, str]]  # {"profile", "reason"}


class Breaker:
    """Per profile: closed; open after `failures` failures in a row; half-open after `cool_s`."""

    def __init__(
        self,
        failures: int = 3,
        cool_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures, self.cool_s, self._clock = failures, cool_s, clock
        self._streak = 0
        self._opened_at: float | None = None
        self._trial = False

    def blocked(self, *, peek: bool = False) -> str | None:
        """Why the profile may not be tried now, or None (and, half-open, this caller is the trial unless
        it only `peek`s)."""
        if self._opened_at is None:
            return None
        waited = self._clock() - self._opened_at
        if waited >= self.cool_s and not self._trial:
            if peek:
                return None
            self._trial = True
            return None
        left = max(0.0, self.cool_s - waited)
        return f"circuit open after {self._streak} failures in a row; next try in {left:.0f} s"

    def succeeded(self) -> None:
        self._streak, self._opened_at, self._trial = 0, None, False

    def failed(self) -> None:
        self._streak += 1
        if self._streak >= self.failures or self._trial:
            self._opened_at, self._trial = self._clock(), False


def _matching_rule(route: Route, input_tokens: int, sensitive: bool) -> tuple[str, ...]:
    for rule in route.rules:
        if rule.input_over is not None and input_tokens <= rule.input_over:
            continue
        if rule.sensitive is not None and rule.sensitive != sensitive:
            continue
        return rule.use
    return route.use


class Router:
    def __init__(self, registry: ModelRegistry, budgets: Budgets) -> None:
        self.registry = registry
        self.budgets = budgets
        self._breakers: dict[str, Breaker] = {}

    def breaker(self, name: str) -> Breaker:
        if name not in self._breakers:
            settings = self.registry.settings
            self._breakers[name] = Breaker(settings.breaker_failures, settings.breaker_cool_seconds)
        return self._breakers[name]

    def route_key(self, task: str, client: str | None = None) -> str:
        """The route for `task`: a workflow step's own (`workflow.TASK`) first, then the task's, then the
        default."""
        routes = self.registry.routes
        if client == "workflow" and f"workflow.{task}" in routes:
            return f"workflow.{task}"
        return task if task in routes else "default"

    def primary(self, task: str, profile: str | None = None) -> ModelHost:
        """The host a request for `task` would try first if nothing is skipped (for admission)."""
        name = profile or self.registry.routes[self.route_key(task)].use[0]
        return self.registry.host(name)

    def plan(self, task: str, *, input_tokens: int, sensitive: bool, profile: str | None = None) -> Plan:
        """The profiles to try, in order. `profile` (a request naming one) replaces the route; an unknown
        one raises `UnknownProfile`. `NoRoute` when every profile is skipped."""
        names: tuple[str, ...]
        if profile is not None:
            self.registry.profile(profile)
            key, names = "request", (profile,)
        else:
            key = self.route_key(task)
            names = _matching_rule(self.registry.routes[key], input_tokens, sensitive)
        candidates: list[Candidate] = []
        skipped: list[dict[str, str]] = []
        over_budget = False
        for name in dict.fromkeys(names):
            local = self.registry.is_local(name)
            reason = None
            if sensitive and not local:
                reason = "sensitive input stays on this computer"
            if reason is None:
                reason = self.budgets.exceeded(name, task)
                over_budget = over_budget or reason is not None
            if reason is None:
                reason = self.breaker(name).blocked()
            if reason is not None:
                skipped.append({"profile": name, "reason": reason})
                continue
            candidates.append(Candidate(name, self.registry.profile(name), self.registry.host(name), local))
        if not candidates:
            why = "; ".join(f"{s['profile']}: {s['reason']}" for s in skipped)
            code = "budget_exhausted" if over_budget else "no_model"
            raise NoRoute(f"no model profile may take this {task} request ({why})", code)
        return Plan(key, candidates, skipped)

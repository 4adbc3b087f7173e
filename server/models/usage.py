"""Tokens and cost per profile and task, and the budgets that stop a profile at its limit.

Lineage is the ledger: every run records its profile, tokens and cost (from the profile's prices), so
usage survives restarts and is as tamper-evident as the audit log. A day and a month are the computer's
local calendar day and month. Budgets: `daily_budget`/`monthly_budget` (cost) and `daily_tokens`/
`monthly_tokens` per profile, `daily_budget`/`monthly_budget` per task route.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from deskpilot.server.lineage import LineageStore
from deskpilot.server.settings import ModelProfile, Route

__all__ = ["Budgets", "UsageLine", "UsageReport", "run_cost"]

# Budget checks read lineage at most this often (a request's check costs nothing between reads).
_FRESH_S = 1.0


def run_cost(profile: ModelProfile, tokens_in: int, tokens_out: int) -> float:
    return round(tokens_in / 1000 * profile.price_in_per_1k + tokens_out / 1000 * profile.price_out_per_1k, 6)


class UsageLine(msgspec.Struct, rename="camel", kw_only=True):
    profile: str
    task: str
    runs: int
    tokens_in: int
    tokens_out: int
    cost: float


class Limit(msgspec.Struct, rename="camel", kw_only=True):
    """A budget and how much of it is spent, for a profile or a task, per day or month."""

    scope: str  # "profile" | "task"
    name: str
    period: str  # "day" | "month"
    kind: str  # "cost" | "tokens"
    limit: float
    spent: float


class UsageReport(msgspec.Struct, rename="camel", kw_only=True):
    day_start: str
    month_start: str
    today: list[UsageLine]
    this_month: list[UsageLine]
    limits: list[Limit]


def _period_starts(now: datetime) -> tuple[datetime, datetime]:
    local = now.astimezone()
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


class Budgets:
    def __init__(
        self,
        profiles: Mapping[str, ModelProfile],
        routes: Mapping[str, Route],
        lineage: LineageStore,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profiles, self.routes, self.lineage = profiles, routes, lineage
        self._clock = clock
        self._read_at = -_FRESH_S
        self._day: list[UsageLine] = []
        self._month: list[UsageLine] = []

    def _lines(self) -> tuple[list[UsageLine], list[UsageLine]]:
        if self._clock() - self._read_at >= _FRESH_S:
            day, month = _period_starts(self.lineage.now())
            self._day = [UsageLine(**r) for r in self.lineage.usage(day)]
            self._month = [UsageLine(**r) for r in self.lineage.usage(month)]
            self._read_at = self._clock()
        return self._day, self._month

    def spent(self) -> None:
        """A run was recorded: the next check reads lineage again."""
        self._read_at = -_FRESH_S

    def limits(self) -> list[Limit]:
        day, month = self._lines()
        out: list[Limit] = []

        def add(scope: str, name: str, lines: list[UsageLine], period: str, kind: str, limit: Any) -> None:
            if limit is None:
                return
            mine = [x for x in lines if (x.profile if scope == "profile" else x.task) == name]
            spent = (
                sum(x.cost for x in mine) if kind == "cost" else sum(x.tokens_in + x.tokens_out for x in mine)
            )
            out.append(Limit(scope=scope, name=name, period=period, kind=kind, limit=limit, spent=spent))

        for name, p in self.profiles.items():
            add("profile", name, day, "day", "cost", p.daily_budget)
            add("profile", name, month, "month", "cost", p.monthly_budget)
            add("profile", name, day, "day", "tokens", p.daily_tokens)
            add("profile", name, month, "month", "tokens", p.monthly_tokens)
        for task, route in self.routes.items():
            add("task", task, day, "day", "cost", route.daily_budget)
            add("task", task, month, "month", "cost", route.monthly_budget)
        return out

    def _configured(self, profile: str, task: str) -> bool:
        p = self.profiles.get(profile)
        route = self.routes.get(task)
        budgets = (p.daily_budget, p.monthly_budget, p.daily_tokens, p.monthly_tokens) if p else ()
        return any(b is not None for b in budgets) or (
            route is not None and (route.daily_budget is not None or route.monthly_budget is not None)
        )

    def exceeded(self, profile: str, task: str) -> str | None:
        """Why `profile` may not take a `task` request now (a budget is spent), or None."""
        if not self._configured(profile, task):
            return None
        for limit in self.limits():
            mine = (limit.scope, limit.name) in (("profile", profile), ("task", task))
            if mine and limit.spent >= limit.limit:
                unit = "tokens" if limit.kind == "tokens" else "cost"
                spent, who = f"{limit.spent:g} of {limit.limit:g}", f"{limit.scope} {limit.name!r}"
                return f"the {limit.period}'s {unit} budget of {who} is spent ({spent})"
        return None

    def report(self) -> UsageReport:
        day, month = _period_starts(self.lineage.now())
        self.spent()
        today, this_month = self._lines()
        return UsageReport(
            day_start=day.isoformat(),
            month_start=month.isoformat(),
            today=today,
            this_month=this_month,
            limits=self.limits(),
        )

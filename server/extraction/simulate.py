"""A simulated reviewer: process a labelled data set in order, through the real HTTP API, and correct every
result the app sends to review with the item's gold labels, as a person would.

It measures whether the system learns: after each item, the review rate (the share of the last `WINDOW`
items that went to a person), the accuracy of what was accepted without review (all so far), and the
accuracy of every result as proposed (the last `WINDOW`). The app is the real one (`create_app`), called
in-process over HTTP (Litestar's test client, on loopback addresses only), so a correction takes the same
path as the task pane's: `POST /v1/reviews/{id}` with the reviewer's edit, validated, chained in lineage,
and learned from wherever the app learns from decisions.

The machinery is generic (`simulate`) over a `SimulatedTask`: how to submit an item and read the result
and its review id, the gold correction of a proposal (the fields to edit; none means accept), and whether
a result is right. `ExtractionSimulation` is extraction's; triage supplies its own.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import msgspec

from deskpilot.inference.extraction import ExtractionSchema
from deskpilot.inference.extraction.evaluate import Example
from deskpilot.inference.extraction.hybrid import same_value
from deskpilot.inference.extraction.normalize import infer_day_first, parse_amount

__all__ = [
    "REVIEWER",
    "ExtractionSimulation",
    "SimulatedTask",
    "Simulation",
    "Step",
    "Submission",
    "parse_sse",
    "simulate",
    "simulate_extraction_reviews",
]

T = TypeVar("T", contravariant=True)
Item = TypeVar("Item")
WINDOW = 20  # items the review rate and the overall accuracy are taken over
REVIEWER = {"name": "Simulated Reviewer", "address": "reviewer@example.com"}


class Submission(msgspec.Struct, frozen=True):
    """What the app answered for one item: the proposed result, and its review item if it queued one."""

    data: dict[str, Any]
    review_id: str | None


class SimulatedTask(Protocol[T]):
    def submit(self, client: httpx.Client, item: T) -> Submission: ...

    def correction(self, item: T, proposed: dict[str, Any]) -> dict[str, Any]:
        """The fields a reviewer who knows the gold labels would change; empty: accept as proposed."""
        ...

    def right(self, item: T, data: dict[str, Any]) -> bool: ...

    def item_id(self, item: T) -> str: ...


class Step(msgspec.Struct, frozen=True):
    item: str
    reviewed: bool
    right: bool  # the result as proposed, before any review
    decision: str | None  # accept or edit, when reviewed


class Simulation(msgspec.Struct, kw_only=True):
    task: str
    steps: list[Step]

    def curves(self, window: int = WINDOW) -> dict[str, list[float | None]]:
        """After each item: review rate and overall accuracy over the last `window` items, and the
        accuracy of everything accepted without review so far (None until something was)."""
        review: list[float | None] = []
        overall: list[float | None] = []
        accepted_right: list[float | None] = []
        accepted = right_accepted = 0
        for index, step in enumerate(self.steps):
            recent = self.steps[max(0, index + 1 - window) : index + 1]
            review.append(sum(s.reviewed for s in recent) / len(recent))
            overall.append(sum(s.right for s in recent) / len(recent))
            if not step.reviewed:
                accepted += 1
                right_accepted += step.right
            accepted_right.append(right_accepted / accepted if accepted else None)
        return {
            f"review rate (last {window})": review,
            "accuracy accepted without review (so far)": accepted_right,
            f"accuracy overall (last {window})": overall,
        }

    def summary(self) -> str:
        n = len(self.steps)
        reviewed = sum(s.reviewed for s in self.steps)
        accepted = [s for s in self.steps if not s.reviewed]
        curves = self.curves()
        rate = next(iter(curves.values()))
        below = next(
            (i for i, r in enumerate(rate, start=1) if r is not None and r < 0.5 and i >= WINDOW), None
        )
        return (
            f"{self.task}: {n} items, {reviewed} reviewed ({reviewed / max(n, 1):.2f}); review rate over the "
            f"last {WINDOW}: {rate[-1] if rate else 0:.2f}"
            + (f", first below 0.50 after item {below}" if below else ", never below 0.50")
            + f"; accepted without review {len(accepted)}, right {sum(s.right for s in accepted)}"
            + (f" ({sum(s.right for s in accepted) / len(accepted):.2f})" if accepted else "")
            + f"; right as proposed {sum(s.right for s in self.steps)}/{n}"
        )


def _decide(client: httpx.Client, review_id: str, fields: dict[str, Any]) -> str:
    body: dict[str, Any] = {"decision": "edit", "reviewer": REVIEWER, "fields": fields}
    if fields:
        response = client.post(f"/v1/reviews/{review_id}", json=body)
        # Values that normalise to what was proposed change nothing: that is an accept.
        if response.status_code == 400 and "changes nothing" in response.text:
            fields = {}
        else:
            _check(response, f"POST /v1/reviews/{review_id}")
            return "edit"
    response = client.post(f"/v1/reviews/{review_id}", json={"decision": "accept", "reviewer": REVIEWER})
    _check(response, f"POST /v1/reviews/{review_id}")
    return "accept"


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise RuntimeError(f"{what} answered {response.status_code}: {response.text[:300]}")


def simulate(
    task: SimulatedTask[Item], items: Sequence[Item], client: httpx.Client, *, name: str
) -> Simulation:
    """Submit each item in order; correct through the review API every one the app sends to review."""
    steps = []
    for item in items:
        submitted = task.submit(client, item)
        decision = None
        if submitted.review_id is not None:
            decision = _decide(client, submitted.review_id, task.correction(item, submitted.data))
        steps.append(
            Step(
                item=task.item_id(item),
                reviewed=submitted.review_id is not None,
                right=task.right(item, submitted.data),
                decision=decision,
            )
        )
    return Simulation(task=name, steps=steps)


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """(event, decoded data) pairs of a server-sent event stream; comments left out."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if name:
            events.append((name, msgspec.json.decode("\n".join(data))))
    return events


class ExtractionSimulation:
    """Extraction as a simulated task: `POST /v1/extract`, labels mapped to schema fields."""

    def __init__(self, schema: ExtractionSchema, field_map: dict[str, str]) -> None:
        self.schema, self.field_map = schema, field_map

    def item_id(self, item: Example) -> str:
        return item.id

    def submit(self, client: httpx.Client, item: Example) -> Submission:
        response = client.post(
            "/v1/extract",
            json={"text": item.text, "schema": self.schema.name, "cache": False, "client": "cli"},
        )
        _check(response, "POST /v1/extract")
        events = parse_sse(response.text)
        for name, data in events:
            if name == "error":
                raise RuntimeError(f"extraction of {item.id} failed: {data}")
            if name == "result":
                return Submission(data=data["data"], review_id=(data.get("review") or {}).get("id"))
        raise RuntimeError(f"extraction of {item.id} ended without a result")

    def _gold(self, field: str, value: Any) -> Any:
        if value in (None, ""):
            return None
        if (self.schema.kind_of(field) or "").startswith("amount"):
            amount = parse_amount(value)
            return None if amount is None else float(amount)
        return str(value)

    def correction(self, item: Example, proposed: dict[str, Any]) -> dict[str, Any]:
        day_first = infer_day_first(item.text)
        fields = {}
        for label, field in self.field_map.items():
            if label not in item.labels:
                continue
            gold = self._gold(field, item.labels[label])
            if not same_value(self.schema.kind_of(field), proposed.get(field), gold, day_first=day_first):
                fields[field] = gold
        return fields

    def right(self, item: Example, data: dict[str, Any]) -> bool:
        return not self.correction(item, data)


def simulate_extraction_reviews(
    settings: Any,
    schema: ExtractionSchema,
    examples: Sequence[Example],
    field_map: dict[str, str],
    *,
    profile: str,
    generations: Path | None,
    plots: Path,
) -> str:
    """`deskpilot eval extraction --simulate-review`: the app on a scratch copy of the app data folder (so
    the user's lineage, reviews and memory are untouched; their model settings and calibrations are
    copied), the simulation, and its curves as a PNG. Returns the summary."""
    from litestar.testing import TestClient

    from deskpilot.server.app import create_app
    from deskpilot.server.core.token import read_token
    from deskpilot.server.extraction.evaluation import ReplayBackend
    from deskpilot.server.extraction.plots import learning_curves
    from deskpilot.server.models.registry import ModelRegistry
    from deskpilot.server.services import Services

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    with tempfile.TemporaryDirectory(prefix="deskpilot-simulation-") as scratch:
        home = Path(scratch)
        if (settings.home / "calibration").is_dir():
            shutil.copytree(settings.home / "calibration", home / "calibration")
        scratch_settings = msgspec.structs.replace(settings, home=home, worker=False)
        backend = ReplayBackend(ModelRegistry(scratch_settings).loader(profile), generations)
        services = Services(scratch_settings, backends={profile: backend})
        app = create_app(services)
        with TestClient(app, base_url="http://127.0.0.1:8765") as client:
            client.headers.update({"Authorization": f"Bearer {read_token(scratch_settings.token_path)}"})
            result = simulate(ExtractionSimulation(schema, field_map), examples, client, name="extraction")
    png = learning_curves(
        plots / "simulated-review.png",
        result.curves(),
        title=f"simulated reviewer · {schema.schema_id} · {profile} · {len(examples)} documents",
    )
    return f"{result.summary()}\ncurves: {png}"

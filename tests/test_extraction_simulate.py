"""The simulated reviewer's arithmetic: review rate and accuracy overall over a trailing window, accuracy of
what was accepted without review so far, and the summary that reports them."""

from __future__ import annotations

import pytest

from deskpilot.server.extraction.simulate import Simulation, Step, parse_sse

pytestmark = pytest.mark.unit


def step(index: int, reviewed: bool, right: bool) -> Step:
    return Step(item=str(index), reviewed=reviewed, right=right, decision="edit" if reviewed else None)


def test_curves_follow_the_items_seen() -> None:
    # Four reviewed and wrong, then six accepted: five right, one wrong.
    steps = [step(i, True, False) for i in range(4)] + [step(4 + i, False, i != 2) for i in range(6)]
    curves = Simulation(task="extraction", steps=steps).curves(window=4)
    review, accepted, overall = curves.values()
    assert review[:4] == [1.0] * 4 and review[-1] == 0.0 and review[5] == 0.5
    assert accepted[:4] == [None] * 4 and accepted[4] == 1.0 and accepted[-1] == pytest.approx(5 / 6)
    assert overall[3] == 0.0 and overall[-1] == 0.75
    summary = Simulation(task="extraction", steps=steps).summary()
    assert "10 items, 4 reviewed (0.40)" in summary and "accepted without review 6, right 5 (0.83)" in summary


def test_sse_parsing_keeps_events_and_drops_comments() -> None:
    text = ': keep-alive\n\nevent: meta\ndata: {"runId": "r"}\n\nevent: result\ndata: {"data": {}}\n\n'
    assert parse_sse(text) == [("meta", {"runId": "r"}), ("result", {"data": {}})]

"""Calibration: isotonic maps are monotonic, files are versioned per profile and template, ECE is what it
says, and the review threshold follows the target precision."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import msgspec
import pytest

from deskpilot.inference.extraction.calibration import (
    FORMAT_VERSION,
    NEVER,
    Calibration,
    CalibrationError,
    CalibrationStore,
    IsotonicMap,
    expected_calibration_error,
    fit_isotonic,
    precision_curve,
    threshold_for_precision,
)

pytestmark = pytest.mark.unit


def _noisy(n: int, seed: int) -> tuple[list[float], list[bool]]:
    rng = random.Random(seed)
    scores = [rng.random() for _ in range(n)]
    return scores, [rng.random() < s**2 for s in scores]  # right more often as the score rises


@pytest.mark.parametrize("seed", range(8))
def test_isotonic_map_never_decreases(seed: int) -> None:
    scores, outcomes = _noisy(300, seed)
    mapping = fit_isotonic(scores, outcomes)
    grid = [i / 200 for i in range(-10, 211)]
    values = [mapping(x) for x in grid]
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert mapping.ys == sorted(mapping.ys) and mapping.count == 300
    assert all(0 <= y <= 1 for y in mapping.ys)


def test_isotonic_map_pools_violators_and_small_blocks() -> None:
    # Right at low scores, wrong at high ones: the best non-decreasing fit is one flat block.
    mapping = fit_isotonic([0.1] * 5 + [0.9] * 5, [True] * 5 + [False] * 5)
    assert mapping.ys == [0.5]
    # Two clean blocks of enough points stay apart; a block of two points joins a neighbour.
    two = fit_isotonic([0.2] * 6 + [0.8] * 6, [False] * 6 + [True] * 6)
    assert two.xs == [0.2, 0.8] and two.ys == [0.0, 1.0]
    merged = fit_isotonic([0.2] * 6 + [0.8] * 2, [False] * 6 + [True] * 2)
    assert merged.ys == [0.25]
    assert fit_isotonic([], []).xs == [] and IsotonicMap([], [])(0.3) == 0.5
    with pytest.raises(ValueError, match="2 scores but 1 outcomes"):
        fit_isotonic([0.1, 0.2], [True])


def test_calibration_lowers_the_error_of_overconfident_scores() -> None:
    scores, outcomes = _noisy(2000, 1)
    raw = expected_calibration_error(scores, outcomes)
    mapping = fit_isotonic(scores[:1000], outcomes[:1000])
    calibrated = expected_calibration_error([mapping(s) for s in scores[1000:]], outcomes[1000:])
    assert raw > 0.1 and calibrated < raw / 2


def test_ece_by_hand() -> None:
    # Bin 0.9: predicted 0.9, right 1 of 2 -> gap 0.4; bin 0.2: predicted 0.2, right 0 of 2 -> gap 0.2.
    assert expected_calibration_error([0.9, 0.9, 0.2, 0.2], [True, False, False, False]) == pytest.approx(0.3)
    assert expected_calibration_error([], []) == 0.0


def test_threshold_follows_the_target_precision() -> None:
    scores, outcomes = _noisy(2000, 2)
    mapping = fit_isotonic(scores, outcomes)
    curve = precision_curve([mapping(s) for s in scores], outcomes)
    targets = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    thresholds = [threshold_for_precision(curve, t) for t in targets]
    assert thresholds == sorted(thresholds) and thresholds[0] < thresholds[-1]
    for target, threshold in zip(targets, thresholds, strict=True):
        accepted = [o for s, o in zip(scores, outcomes, strict=True) if mapping(s) >= threshold]
        assert accepted and sum(accepted) / len(accepted) >= target
    # A target nothing reaches sends everything to review.
    assert threshold_for_precision(precision_curve([0.5, 0.4], [False, False]), 0.95) == NEVER


def _calibration(profile: str = "embedded", template: str = "extract_invoice@v1") -> Calibration:
    return Calibration(
        profile=profile,
        template=template,
        schema="invoice@v1",
        fitted_on="test",
        documents=2,
        maps={"vendor": {"model": IsotonicMap([0.0, 0.5], [0.1, 0.8], 10)}},
        curve=precision_curve([0.9, 0.2], [True, False]),
    )


def test_calibration_files_are_versioned_and_kept_per_profile_and_template(tmp_path: Path) -> None:
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    CalibrationStore(shipped, None).save(_calibration())
    store = CalibrationStore(user, shipped)
    found = store.get("embedded", "extract_invoice@v1")
    assert found is not None and found.version == FORMAT_VERSION
    assert (
        found.probability("vendor", "model", 0.7) == 0.8 and found.probability("vendor", "agree", 1) is None
    )
    assert found.threshold(0.95) == 0.9
    # Where no development document was accepted that precisely, the probability must reach the target.
    unsure = msgspec.structs.replace(found, curve=precision_curve([0.6, 0.5], [False, True]))
    assert unsure.threshold(0.95) == 0.95 and unsure.threshold(0.5) == 0.5
    assert (
        store.get("embedded", "extract_invoice@v2") is None and store.get("big", "extract_invoice@v1") is None
    )
    # The user's own calibration comes before the shipped one.
    mine = msgspec.structs.replace(_calibration(), fitted_on="mine")
    CalibrationStore(user, None).save(mine)
    fresh = CalibrationStore(user, shipped).get("embedded", "extract_invoice@v1")
    assert fresh is not None and fresh.fitted_on == "mine"
    # Another format version, or a file about another profile, is refused with the reason.
    path = user / "embedded" / "extract_invoice@v1.json"
    path.write_bytes(msgspec.json.encode({**msgspec.to_builtins(mine), "version": FORMAT_VERSION + 1}))
    with pytest.raises(CalibrationError, match="calibration format 2"):
        CalibrationStore(user, shipped).get("embedded", "extract_invoice@v1")
    path.write_bytes(msgspec.json.encode(_calibration(profile="big")))
    with pytest.raises(CalibrationError, match="a calibration of big/extract_invoice@v1"):
        CalibrationStore(user, shipped).get("embedded", "extract_invoice@v1")

"""Calibrated confidence: raw scores mapped to the probability that a value is right, learned on labels.

A raw confidence (`confidence.py`) orders values well but is not a probability: 0.8 from the token
probabilities of a 135M model is right far less often than 8 times in 10. Isotonic regression (pool
adjacent violators) learns the mapping from labelled outcomes: the best fit that never decreases, so a
higher raw score never means a lower calibrated one (`IsotonicMap` is monotonic by construction). It needs
no assumption about the shape of the curve, which Platt scaling would impose; with the few hundred points a
development set gives, the steps are coarse, so each step needs `MIN_BLOCK` points before it stands alone.

A `Calibration` is kept per model profile and prompt template (name@version), and applies only to the
model it was fitted with: another model, or another prompt, writes differently and needs its own. It holds
one map per field and per source of the value (`model`, `extractor`, `agree` when both said the same,
`none` when neither said anything), the curve of document precision against threshold (`PrecisionPoint`s)
from which a target precision picks the review threshold (`threshold_for_precision`), and a format
`version`; files are JSON, `save` and `load` below.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

import msgspec

__all__ = [
    "FORMAT_VERSION",
    "Calibration",
    "CalibrationError",
    "CalibrationStore",
    "IsotonicMap",
    "PrecisionPoint",
    "expected_calibration_error",
    "fit_isotonic",
    "precision_curve",
    "reliability_bins",
    "threshold_for_precision",
]

FORMAT_VERSION = 1
MIN_BLOCK = 5  # points a step of the isotonic map needs before it stands alone (see the module docstring)
NEVER = 1.01  # a threshold no probability reaches: everything goes to review


class CalibrationError(ValueError):
    """A calibration file that cannot be used (unreadable, another format version, another model)."""


class IsotonicMap(msgspec.Struct, frozen=True):
    """A non-decreasing step function: scores at or above `xs[i]` (and below `xs[i + 1]`) map to `ys[i]`;
    scores below `xs[0]` map to `ys[0]`."""

    xs: list[float]
    ys: list[float]
    count: int = 0  # labelled points it was fitted on

    def __call__(self, score: float) -> float:
        if not self.xs:
            return 0.5
        return self.ys[max(0, bisect.bisect_right(self.xs, score) - 1)]


def fit_isotonic(
    scores: Sequence[float], outcomes: Sequence[bool], *, min_block: int = MIN_BLOCK
) -> IsotonicMap:
    """The non-decreasing step function closest (least squares) to the outcomes, by pool adjacent violators,
    with each block holding at least `min_block` points (merged toward its smaller neighbour)."""
    if len(scores) != len(outcomes):
        raise ValueError(f"{len(scores)} scores but {len(outcomes)} outcomes")
    if not scores:
        return IsotonicMap(xs=[], ys=[], count=0)
    points = sorted(zip(scores, outcomes, strict=True), key=lambda p: p[0])
    # Each block: [first score, sum of outcomes, points]
    blocks: list[list[float]] = []
    for score, outcome in points:
        if blocks and blocks[-1][0] == score:
            blocks[-1][1] += outcome
            blocks[-1][2] += 1
        else:
            blocks.append([score, float(outcome), 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            last = blocks.pop()
            blocks[-1][1] += last[1]
            blocks[-1][2] += last[2]
    blocks = _merge_small(blocks, min_block)
    return IsotonicMap(
        xs=[b[0] for b in blocks], ys=[round(b[1] / b[2], 4) for b in blocks], count=len(points)
    )


def _merge_small(blocks: list[list[float]], min_block: int) -> list[list[float]]:
    """Merge blocks with fewer than `min_block` points into a neighbour; merging two neighbours of a
    non-decreasing sequence keeps it non-decreasing."""
    while len(blocks) > 1:
        small = [i for i, b in enumerate(blocks) if b[2] < min_block]
        if not small:
            break
        i = small[0]
        j = i - 1 if i == len(blocks) - 1 or (i > 0 and blocks[i - 1][2] <= blocks[i + 1][2]) else i + 1
        low, high = min(i, j), max(i, j)
        blocks[low] = [blocks[low][0], blocks[low][1] + blocks[high][1], blocks[low][2] + blocks[high][2]]
        del blocks[high]
    return blocks


def reliability_bins(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = 10
) -> list[tuple[float, float, int]]:
    """Per equal-width bin of predicted probability: (mean prediction, share right, points); empty bins
    left out."""
    sums: list[list[float]] = [[0.0, 0.0, 0.0] for _ in range(bins)]
    for p, right in zip(probabilities, outcomes, strict=True):
        b = sums[min(int(p * bins), bins - 1)]
        b[0] += p
        b[1] += right
        b[2] += 1
    return [(s[0] / s[2], s[1] / s[2], int(s[2])) for s in sums if s[2]]


def expected_calibration_error(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = 10
) -> float:
    """ECE: the mean gap between predicted probability and the share right, over equal-width bins,
    weighted by the points in each bin."""
    total = len(probabilities)
    if not total:
        return 0.0
    return (
        sum(n * abs(mean - right) for mean, right, n in reliability_bins(probabilities, outcomes, bins))
        / total
    )


class PrecisionPoint(msgspec.Struct, frozen=True, array_like=True):
    """Accepting documents whose probability is at least `threshold` accepts `coverage` of them, of which
    `precision` are right."""

    threshold: float
    precision: float
    coverage: float


def precision_curve(probabilities: Sequence[float], outcomes: Sequence[bool]) -> list[PrecisionPoint]:
    """One point per distinct probability, from the highest: the precision and coverage of accepting every
    document at or above it."""
    ordered = sorted(zip(probabilities, outcomes, strict=True), key=lambda p: -p[0])
    curve: list[PrecisionPoint] = []
    right = 0
    for index, (p, outcome) in enumerate(ordered, start=1):
        right += outcome
        if index == len(ordered) or ordered[index][0] != p:
            curve.append(PrecisionPoint(round(p, 6), right / index, index / len(ordered)))
    return curve


def threshold_for_precision(curve: Sequence[PrecisionPoint], target: float) -> float:
    """The lowest threshold whose accepted documents are at least `target` right, where every higher
    threshold is too (so accepting more never dips below the target on the way); `NEVER` when none is."""
    threshold = NEVER
    for point in curve:  # highest threshold first
        if point.precision < target:
            break
        threshold = point.threshold
    return threshold


class Calibration(msgspec.Struct, kw_only=True):
    """The calibration of one model profile with one prompt template (see the module docstring)."""

    version: int = FORMAT_VERSION
    profile: str
    template: str  # name@version of the prompt template
    model_id: str = ""  # the model it was fitted with: a profile that now names other weights needs another
    schema: str  # name@version of the extraction schema
    fitted_on: str  # the data set, as its file name, and when
    documents: int
    maps: dict[str, dict[str, IsotonicMap]]  # field -> source -> map
    curve: list[PrecisionPoint] = []
    ece: float | None = None  # out-of-fold, over every field value

    def probability(self, field: str, source: str, score: float) -> float | None:
        """The calibrated probability that the value is right; None for a field or source not fitted."""
        mapping = self.maps.get(field, {}).get(source)
        return None if mapping is None or not mapping.xs else mapping(score)

    def applies_to(self, schema_id: str, model_id: str) -> bool:
        return self.schema == schema_id and self.model_id in ("", model_id)

    def threshold(self, target_precision: float) -> float:
        """The review threshold for a target precision: the lowest document probability at which the
        development documents were accepted at least that precisely; where none were (a small model
        that is rarely sure of everything), the target itself, as a calibrated probability must reach
        it: a document the calibration (or the vendor memory) makes that likely right is accepted."""
        found = threshold_for_precision(self.curve, target_precision)
        return target_precision if found == NEVER else found

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(msgspec.json.format(msgspec.json.encode(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            raw = msgspec.json.decode(path.read_bytes())
            if raw.get("version") != FORMAT_VERSION:
                raise CalibrationError(
                    f"{path}: calibration format {raw.get('version')}, this version reads {FORMAT_VERSION}"
                )
            return msgspec.convert(raw, cls)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError, AttributeError) as exc:
            raise CalibrationError(f"{path}: not a usable calibration file: {exc}") from exc


# Calibrations that ship with the package, for the embedded model (`deskpilot eval extraction --fit`).
SHIPPED = Path(__file__).parent / "calibrations"


class CalibrationStore:
    """Calibrations by model profile and prompt template: the user's own (fitted on their data, in
    `folder`, `<profile>/<template>.json`) before those shipped with the package. Loaded once each."""

    def __init__(self, folder: Path | None, shipped: Path | None = SHIPPED) -> None:
        self.folder, self.shipped = folder, shipped
        self._loaded: dict[tuple[str, str], Calibration | None] = {}

    def path(self, profile: str, template: str) -> Path:
        if self.folder is None:
            raise CalibrationError("no folder to keep calibrations in")
        return self.folder / profile / f"{template}.json"

    def get(self, profile: str, template: str) -> Calibration | None:
        key = (profile, template)
        if key not in self._loaded:
            self._loaded[key] = self._find(profile, template)
        return self._loaded[key]

    def _find(self, profile: str, template: str) -> Calibration | None:
        for folder in (self.folder, self.shipped):
            path = None if folder is None else folder / profile / f"{template}.json"
            if path is not None and path.is_file():
                found = Calibration.load(path)
                if (found.profile, found.template) != (profile, template):
                    raise CalibrationError(
                        f"{path}: a calibration of {found.profile}/{found.template}, not {profile}/{template}"
                    )
                return found
        return None

    def save(self, calibration: Calibration) -> Path:
        path = self.path(calibration.profile, calibration.template)
        calibration.save(path)
        self._loaded[(calibration.profile, calibration.template)] = calibration
        return path

"""Fitting a `Calibration` on labelled documents, and measuring it honestly (out of fold).

Every candidate value of every labelled field (`hybrid.candidates`) is one observation: its source, its raw
score, and whether it equals the label. Isotonic maps are fitted per field and source on all of them; the
figures that judge the calibration (ECE, the hybrid's choices and F1, the precision curve the review
threshold comes from) are computed out of fold: the documents are split into `folds` groups, and each group
is scored with maps fitted on the others, so no document is judged by a map that saw its own label.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from deskpilot.inference.extraction.calibration import (
    Calibration,
    IsotonicMap,
    expected_calibration_error,
    fit_isotonic,
    precision_curve,
)
from deskpilot.inference.extraction.evaluate import Example, same_value
from deskpilot.inference.extraction.extract import ExtractionResult
from deskpilot.inference.extraction.extractors import Facts
from deskpilot.inference.extraction.hybrid import candidates, choose, extractor_values
from deskpilot.inference.extraction.normalize import infer_day_first
from deskpilot.inference.extraction.schemas import ExtractionSchema

__all__ = ["Fit", "Observation", "fit_calibration", "observations"]


class Observation(msgspec.Struct, frozen=True):
    document: int
    field: str
    source: str
    score: float
    right: bool


class Fit(msgspec.Struct, kw_only=True):
    """A calibration and its out-of-fold measurements."""

    calibration: Calibration
    chosen: list[ExtractionResult]  # per document, the hybrid's result (out of fold)
    probabilities: list[float]  # per chosen field value (out of fold) ...
    outcomes: list[bool]  # ... and whether it was right
    document_probabilities: list[float]  # per document (out of fold) ...
    document_right: list[bool]  # ... and whether every labelled field was right


def _right(schema: ExtractionSchema, field: str, value: Any, gold: Any, day_first: bool) -> bool:
    if gold in (None, ""):
        return value in (None, "")
    return value not in (None, "") and same_value(schema.kind_of(field), value, gold, day_first=day_first)


def observations(
    schema: ExtractionSchema,
    field_map: dict[str, str],
    examples: Sequence[Example],
    results: Sequence[tuple[ExtractionResult, Facts]],
) -> list[Observation]:
    """One observation per candidate of every labelled field (see the module docstring)."""
    found = []
    for index, (example, (result, facts)) in enumerate(zip(examples, results, strict=True)):
        day_first = infer_day_first(example.text)
        options = candidates(schema, result, extractor_values(schema, facts), day_first)
        for label, field in field_map.items():
            if label not in example.labels or field not in options:
                continue
            gold = example.labels[label]
            for c in options[field]:
                right = _right(schema, field, c.value, gold, day_first)
                found.append(Observation(index, field, c.source, c.score, right))
    return found


def _maps(found: Sequence[Observation]) -> dict[str, dict[str, IsotonicMap]]:
    grouped: dict[tuple[str, str], list[Observation]] = {}
    for o in found:
        grouped.setdefault((o.field, o.source), []).append(o)
    maps: dict[str, dict[str, IsotonicMap]] = {}
    for (field, source), group in sorted(grouped.items()):
        maps.setdefault(field, {})[source] = fit_isotonic([o.score for o in group], [o.right for o in group])
    return maps


def fit_calibration(
    schema: ExtractionSchema,
    field_map: dict[str, str],
    examples: Sequence[Example],
    results: Sequence[tuple[ExtractionResult, Facts]],
    *,
    profile: str,
    template: str,
    model_id: str = "",
    dataset: str,
    folds: int = 5,
) -> Fit:
    """Fit on every document; measure out of fold (see the module docstring)."""
    found = observations(schema, field_map, examples, results)
    base = Calibration(
        profile=profile,
        template=template,
        model_id=model_id,
        schema=schema.schema_id,
        fitted_on=f"{dataset} ({datetime.now(UTC).date().isoformat()})",
        documents=len(examples),
        maps={},
    )
    chosen_all: list[ExtractionResult] = list(result for result, _ in results)
    probabilities, outcomes = [], []
    doc_p, doc_right = [0.0] * len(examples), [False] * len(examples)
    for fold in range(folds):
        held = {i for i in range(len(examples)) if i % folds == fold}
        fold_calibration = msgspec.structs.replace(
            base, maps=_maps([o for o in found if o.document not in held])
        )
        for index in sorted(held):
            example, (result, facts) = examples[index], results[index]
            chosen = choose(schema, result, text=example.text, facts=facts, calibration=fold_calibration)
            chosen_all[index] = chosen
            day_first = infer_day_first(example.text)
            all_right = True
            for label, field in field_map.items():
                if label not in example.labels or field not in fold_calibration.maps:
                    continue
                right = _right(schema, field, chosen.data.get(field), example.labels[label], day_first)
                p = chosen.fields[field].confidence if field in chosen.fields else 0.0
                probabilities.append(p)
                outcomes.append(right)
                all_right &= right
            doc_p[index], doc_right[index] = chosen.confidence, all_right
    calibration = msgspec.structs.replace(
        base,
        maps=_maps(found),
        curve=precision_curve(doc_p, doc_right),
        ece=round(expected_calibration_error(probabilities, outcomes), 4),
    )
    return Fit(
        calibration=calibration,
        chosen=chosen_all,
        probabilities=probabilities,
        outcomes=outcomes,
        document_probabilities=doc_p,
        document_right=doc_right,
    )

"""`deskpilot eval triage`, in-process with a scripted model and the hash embedder: the scores, the
confusion, results.json, and with `--simulate-review` a reviewer whose corrections make later answers
right (accuracy rises with corrections) and a PNG of the curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskpilot.indexes import HashEmbedder
from deskpilot.inference import GenerationRequest, ScriptedBackend, Token
from deskpilot.server.cli import main
from deskpilot.server.extraction.triage_cli import scores

pytestmark = pytest.mark.integration

LABELS = """
[[labels]]
id = "billing"
name = "Billing"
description = "money matters"

[[labels]]
id = "ops"
name = "Operations"
description = "field work"
"""
# Emails of two kinds that the descriptions do not tell apart (every one mentions payments), each kind
# worded alike: once a person has sorted one of a kind, the next is like it.
KINDS = {
    "billing": "Invoice {n} payment due: amount {n}00 EUR, refund receipts attached",
    "ops": "Compressor station {n} pressure readings on the Katy pipeline, payments desk copied",
}


def write_dataset(folder: Path) -> Path:
    rows = [
        {"id": f"{label}/{n}", "label": label, "subject": f"Item {n}", "body": text.format(n=n)}
        for n in range(1, 7)
        for label, text in KINDS.items()
    ]
    path = folder / "mini.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "labels.toml").write_text(LABELS)
    return path


def unsure_billing(request: GenerationRequest) -> list[Token]:
    return [Token('"billing"', -2.0)]


def run(folder: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    dataset = write_dataset(folder)
    obj = {"backend": ScriptedBackend(unsure_billing), "embedder": HashEmbedder()}
    args = ["eval", "triage", str(dataset), "--labels", str(folder / "labels.toml"), "--plots", str(folder)]
    result = CliRunner().invoke(main, [*args, *extra], obj=obj)
    assert result.exit_code == 0, result.output
    return json.loads((folder / "results.json").read_text())  # type: ignore[no-any-return]


def test_scores_are_accuracy_macro_f1_and_confusion() -> None:
    result = scores(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert result["accuracy"] == 0.75 and result["macroF1"] == pytest.approx((2 / 3 + 0.8) / 2, abs=1e-4)
    assert result["confusion"] == {"a -> a": 1, "a -> b": 1, "b -> b": 2}


def test_eval_triage_scores_the_model_the_zero_shot_and_the_blend(tmp_path: Path) -> None:
    results = run(tmp_path)
    assert [results[name]["n"] for name in ("model", "zeroShot", "blend")] == [12, 12, 12]
    assert results["model"]["accuracy"] == 0.5  # it always says billing
    assert len(results["answers"]) == 12 and "curves" not in results


def test_simulated_review_accuracy_rises_with_corrections(tmp_path: Path) -> None:
    results = run(tmp_path, "--simulate-review")
    right = [a["blend"] == a["gold"] for a in results["answers"]]
    # The first of each kind is up to the model and the descriptions; after corrections, memory decides.
    assert sum(right[6:]) > sum(right[:6]) and all(right[-4:])
    assert any(a["nearest"] for a in results["answers"][2:])
    assert (tmp_path / "triage-simulated-review.png").stat().st_size > 1000
    assert {"accuracy overall (last 40)", "accuracy zero-shot alone, no corrections (last 40)"} <= set(
        results["curves"]
    )

"""The checker checked: its verdicts against hand labels (tests/data/faithful, see its README) on
summaries the embedded model wrote of ten emails written for this, with MiniLM as in the server. Prints
precision and recall of "unsupported", and the unsupported-content rate before and after the check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deskpilot.indexes import SentenceTransformerEmbedder
from deskpilot.inference.faithful import FaithfulChecker
from deskpilot.server.tasks.faithful import check_summary

pytestmark = pytest.mark.model

LABELLED = Path(__file__).parent / "data" / "faithful" / "labelled.jsonl"


def verdicts(checker: FaithfulChecker, row: dict[str, Any]) -> tuple[list[bool], int, int]:
    """Per model sentence, whether the checker finds it supported; and how many sentences the check
    shows in all, and of those how many are the model's own (the rest are quotes of the email)."""
    source = checker.source([row["email"]])
    if row["length"] == "headline":
        result = check_summary(checker, [row["email"]], row["summary"], length="headline", sentences=1)
        supported = [result.supported == 1]
    else:
        supported = [a.supported for a in checker.assess(row["summary"], source)]
        result = checker.check(row["summary"], source, sentences=3)
    own = sum(s.kind == "generated" for s in result.sentences)
    return supported, len(result.sentences), own


def test_the_checker_against_hand_labels(capsys: pytest.CaptureFixture[str]) -> None:
    checker = FaithfulChecker(SentenceTransformerEmbedder())
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line]
    tp = fp = fn = tn = 0
    shown = shown_unsupported = 0
    for row in rows:
        supported, count, own = verdicts(checker, row)
        labels = [label["label"] == "unsupported" for label in row["labels"]]
        assert len(supported) == len(labels), row["id"]
        for flagged, truly in zip((not s for s in supported), labels, strict=True):
            tp, fp = tp + (flagged and truly), fp + (flagged and not truly)
            fn, tn = fn + (not flagged and truly), tn + (not flagged and not truly)
        # What is shown after the check: the model's sentences the checker kept (unsupported when the
        # hand label says so) and verbatim quotes of the email (supported).
        kept_unsupported = sum(truly for s, truly in zip(supported, labels, strict=True) if s)
        shown, shown_unsupported = shown + count, shown_unsupported + min(kept_unsupported, own)
    total = tp + fp + fn + tn
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    with capsys.disabled():
        print(
            f"\n{total} hand-labelled sentences ({tp + fn} unsupported): the checker flags {tp + fp}; "
            f"precision {precision:.2f}, recall {recall:.2f} (tp {tp}, fp {fp}, fn {fn}, tn {tn}); "
            f"unsupported content before {(tp + fn) / total:.1%}, "
            f"after {shown_unsupported}/{shown} shown ({shown_unsupported / max(shown, 1):.1%})"
        )
    assert total >= 30
    # Measured 1.00 and 0.63 (tests/data/faithful/README.md): what it misses are true facts in a false
    # relation ("Yuki Tanaka is the customer"), which neither the facts nor the similarity can see.
    assert precision >= 0.9 and recall >= 0.6

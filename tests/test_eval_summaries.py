"""`deskpilot eval summaries`: the ROUGE-L scorer of the AESLC dev set's README (casefolded whitespace
tokens, LCS F1, best over the references), the lead-12 baseline, and the command itself on three emails
written for this test, with the embedded model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deskpilot.server.tasks.eval_cli import EvalRecord, best_rouge_l, lead_words, rouge_l

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("candidate", "reference", "expected"),
    [
        ("meeting on tuesday", "meeting on tuesday", 1.0),
        ("Meeting confirmation", "meeting confirmation - tues", 2 * 1.0 * 0.5 / 1.5),  # casefolded
        ("the plan for friday", "friday plan", 2 * 0.25 * 0.5 / 0.75),  # order matters: LCS is 1
        ("budget, approved", "budget approved", 2 * 0.5 * 0.5 / 1.0),  # punctuation stays on the word
        ("", "anything", 0.0),
        ("nothing shared", "at all", 0.0),
    ],
)
def test_rouge_l_is_the_datasets_scorer(candidate: str, reference: str, expected: float) -> None:
    assert rouge_l(candidate, reference) == pytest.approx(expected)


def test_best_over_references_and_lead_words() -> None:
    assert best_rouge_l("quarterly budget review", ["lunch", "budget review"]) == pytest.approx(0.8)
    assert lead_words("  one two\nthree " + " x" * 20, 3) == "one two three"
    record = EvalRecord(email_body="b", subject="the subject")
    assert record.references == ["the subject"]  # the sender's subject when nobody annotated


@pytest.mark.model
def test_eval_summaries_reports_rouge_lead_and_unsupported_content(tmp_path: Path, app_home: Path) -> None:
    dataset = tmp_path / "tiny.jsonl"
    emails = [
        ("The board meeting moved to Thursday at 10 am. Please bring the Q3 figures.", "board meeting moved"),
        ("Your invoice 4471 for 1,250 dollars is overdue since May 2. Please pay it this week.", "overdue"),
        ("The office is closed on Monday for the holiday. Support answers by email only.", "office closed"),
    ]
    dataset.write_text(
        "\n".join(
            json.dumps({"id": str(i), "email_body": b, "annotations": [a]}) for i, (b, a) in enumerate(emails)
        )
    )
    generations = tmp_path / "generations.jsonl"
    args = [sys.executable, "-m", "deskpilot.server.cli", "eval", "summaries", str(dataset)]
    env = {"DESKPILOT_HOME": str(app_home), "PATH": "", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [*args, "--generations", str(generations)], capture_output=True, env=env, timeout=300
    )
    report = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "lead 12 words (baseline)" in report and "model, after the check" in report
    assert "unsupported content (the checker): before" in report and "check time per email" in report
    assert len(generations.read_text().splitlines()) == 3
    # Again with the kept generations: nothing is generated, the figures are the same.
    again = subprocess.run(
        [*args, "--generations", str(generations), "--limit", "3"], capture_output=True, env=env
    )
    assert again.returncode == 0 and "1/3" not in again.stderr.decode()
    assert again.stdout.decode().split("check time")[0] == report.split("check time")[0]

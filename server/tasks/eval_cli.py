"""`deskpilot eval summaries DATASET.jsonl`: headline summaries scored with ROUGE-L against human
subject lines, beside the lead-12-words baseline, and the share of unsupported content before and after
the faithfulness check.

Records are AESLC-style: `email_body`, and `annotations` (the human one-line summaries; `subject` is used
when there are none). The score is the one the dataset's README defines, so figures compare with its
baseline: tokens are `text.casefold().split()`, ROUGE-L F1 from the longest common subsequence, the best
over the annotations, averaged over the emails. Like `eval extraction`, this records nothing in lineage
(evaluation is not the user's work) and calls the model's backend directly, with the same job and check
functions the server uses. `--generations FILE` keeps the model's outputs, so a changed check can be
measured again without generating again.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import click
import msgspec
from rich.console import Console
from rich.table import Table

from deskpilot.inference import Backend, Finished, summarize_job
from deskpilot.inference.faithful import Faithful, FaithfulChecker
from deskpilot.server.core.cli import settings_or_usage_error
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.settings import EMBEDDED_PROFILE
from deskpilot.server.tasks.faithful import HEADLINE_WORDS, check_summary

__all__ = ["EvalRecord", "eval_summaries", "lead_words", "rouge_l"]

out = Console()
err = Console(stderr=True)


class EvalRecord(msgspec.Struct, kw_only=True):
    id: str = ""
    email_body: str
    subject: str = ""
    annotations: list[str] = []

    @property
    def references(self) -> list[str]:
        return [a for a in self.annotations if a.strip()] or [self.subject]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over casefolded whitespace tokens (the AESLC dev set README's scorer)."""
    c, r = candidate.casefold().split(), reference.casefold().split()
    if not c or not r:
        return 0.0
    previous = [0] * (len(r) + 1)
    for x in c:
        current = [0]
        for j, y in enumerate(r):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def best_rouge_l(candidate: str, references: Sequence[str]) -> float:
    return max((rouge_l(candidate, r) for r in references), default=0.0)


def lead_words(text: str, count: int = 12) -> str:
    return " ".join(text.split()[:count])


class _Scored(msgspec.Struct, kw_only=True):
    """One email's figures."""

    raw: float  # ROUGE-L of the model's first line as written
    checked: float  # of what the check shows
    lead: float
    written: int
    supported: int
    quoted: int
    fallback: bool
    check_ms: float


@click.command(name="summaries")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--model", "model", metavar="PROFILE", help="A model profile (`[models.NAME]`; default: embedded)."
)
@click.option("--limit", type=click.IntRange(1), help="Only the first N emails.")
@click.option(
    "--generations",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the model's outputs in this JSON Lines file and reuse those of the same email and model.",
)
def eval_summaries(dataset: Path, model: str | None, limit: int | None, generations: Path | None) -> None:
    """ROUGE-L of `headline` summaries against the human ones (vs. the first 12 words), and the share of
    unsupported sentences before and after the faithfulness check."""
    try:
        records = [
            msgspec.json.decode(line, type=EvalRecord)
            for line in dataset.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ][:limit]
    except msgspec.ValidationError as exc:
        raise click.UsageError(f"{dataset}: {exc}") from exc
    settings = settings_or_usage_error()
    profile = model or EMBEDDED_PROFILE
    registry = ModelRegistry(settings)
    try:
        backend = registry.loader(profile)()
    except Exception as exc:  # an unknown profile, weights that will not load: say which
        raise click.ClickException(f"model profile {profile!r}: {exc}") from exc
    try:
        outputs = asyncio.run(_generate_all(backend, records, generations))
    finally:
        backend.close()
    from deskpilot.indexes import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()
    checker = FaithfulChecker(embedder)
    scored = [_score(checker, r, o) for r, o in zip(records, outputs, strict=True)]
    _report(scored, f"{backend.info.model_id} ({profile}) · {dataset.name} · {len(scored)} emails")


async def _generate_all(backend: Backend, records: list[EvalRecord], cache: Path | None) -> list[str]:
    model = backend.info.model_id
    stored: dict[str, str] = {}
    if cache is not None and cache.is_file():
        for line in cache.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("model") == model:
                stored[row["id"]] = row["output"]
    outputs = []
    for n, record in enumerate(records, start=1):
        key = record.id or str(n)
        if key not in stored:
            began = time.perf_counter()
            stored[key] = await _generate(backend, record.email_body)
            err.print(f"[dim]{n}/{len(records)} {key}: {time.perf_counter() - began:.2f} s[/]")
            if cache is not None:
                with cache.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"id": key, "model": model, "output": stored[key]}) + "\n")
        outputs.append(stored[key])
    return outputs


async def _generate(backend: Backend, body: str) -> str:
    job = summarize_job(context_length=backend.info.context_length, text=body, length="headline")
    parts = []
    async for item in backend.stream(job.request):
        if isinstance(item, Finished):
            break
        parts.append(item.text)
    return "".join(parts)


def _score(checker: FaithfulChecker, record: EvalRecord, output: str) -> _Scored:
    began = time.perf_counter()
    checked: Faithful = check_summary(checker, [record.email_body], output, length="headline", sentences=1)
    ms = (time.perf_counter() - began) * 1000
    first = next((line.strip() for line in output.splitlines() if line.strip()), "")
    refs = record.references
    return _Scored(
        raw=best_rouge_l(first, refs),
        checked=best_rouge_l(checked.text, refs),
        lead=best_rouge_l(lead_words(record.email_body, HEADLINE_WORDS), refs),
        written=checked.written,
        supported=checked.supported,
        quoted=sum(s.kind == "quoted" for s in checked.sentences),
        fallback=checked.fallback,
        check_ms=ms,
    )


def _report(scored: list[_Scored], title: str) -> None:
    n = max(len(scored), 1)
    table = Table(title=title)
    for column in ("summary", "ROUGE-L F1 (mean)", "median"):
        table.add_column(column, justify="right" if column != "summary" else "left")

    def row(name: str, values: list[float]) -> None:
        table.add_row(name, f"{sum(values) / n:.3f}", f"{statistics.median(values) if values else 0:.3f}")

    row("lead 12 words (baseline)", [s.lead for s in scored])
    row("model, as written", [s.raw for s in scored])
    row("model, after the check", [s.checked for s in scored])
    out.print(table)
    written = sum(s.written for s in scored)
    unsupported = written - sum(s.supported for s in scored)
    shown = sum(s.supported + s.quoted for s in scored)
    out.print(
        f"unsupported content (the checker): before {unsupported}/{written} "
        f"({unsupported / max(written, 1):.1%}) of the model's headlines; after 0/{shown} shown "
        f"({sum(s.supported for s in scored)} supported as written, {sum(s.quoted for s in scored)} quoted "
        f"from the email, {sum(s.fallback for s in scored)} extractive fallbacks)"
    )
    times = sorted(s.check_ms for s in scored)
    if times:
        out.print(
            f"check time per email: median {statistics.median(times):.1f} ms, "
            f"p90 {times[int(0.9 * (len(times) - 1))]:.1f} ms"
        )

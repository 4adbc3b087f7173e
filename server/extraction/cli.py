"""`deskpilot extract FILE --schema invoice` and `deskpilot eval extraction DATASET.jsonl`.

`extract` is a run like any other: recorded in lineage (client "cli") and queued for review when it needs
a person. `eval` is not user work, so it records nothing in lineage (a hundred evaluation runs would bury
the user's own in the audit record); it calls the same job and finishing functions as the server, on the
same backend, and reports field-level precision, recall, F1, document exact match and latency.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from deskpilot.inference.extraction import ExtractionSchema
from deskpilot.server.core.cli import cli_parts, read_input, settings_or_usage_error
from deskpilot.server.core.wire import ErrorEvent, ResultEvent
from deskpilot.server.extraction.service import ExtractionTask
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.services import Services
from deskpilot.server.settings import EMBEDDED_PROFILE, Settings

__all__ = ["eval_group", "extract"]

out = Console(width=None if sys.stdout.isatty() else 110)
err = Console(stderr=True)


@click.command()
@click.argument("source", metavar="FILE|-")
@click.option(
    "--schema",
    "schema_name",
    default="invoice",
    show_default=True,
    help="invoice, contract, email_actions, meeting_notes, or a custom schema's name.",
)
@click.option(
    "--model", "model_path", type=click.Path(exists=True, dir_okay=False), help="A GGUF model file."
)
@click.option("--fields/--no-fields", default=True, show_default=True, help="Show per-field confidence.")
def extract(source: str, schema_name: str, model_path: str | None, fields: bool) -> None:
    """Extract structured fields from a text or .eml file (or standard input) as JSON on standard output."""
    from deskpilot.inference.extraction import SchemaError, load_schema

    if source != "-" and not Path(source).is_file():
        raise click.BadParameter(f"no such file: {source}", param_hint="FILE")
    settings = settings_or_usage_error(model_path=model_path)
    try:
        schema = load_schema(schema_name, settings.schemas_path)
    except SchemaError as exc:
        raise click.UsageError(str(exc)) from exc
    text, mail = read_input(source)
    content = mail.render() if mail is not None else text or ""
    source_ref = None if source == "-" else str(Path(source).resolve())
    services = Services(settings, max_waiting=0, **cli_parts())
    asyncio.run(_extract(services, schema, content, source_ref, fields))


async def _extract(
    services: Services, schema: ExtractionSchema, text: str, source_ref: str | None, show_fields: bool
) -> None:
    from deskpilot.inference.extraction import extraction_job

    settings = services.settings
    started = time.perf_counter()
    try:
        backend = await services.host.ready()
        job = extraction_job(
            schema, text=text, context_length=backend.info.context_length, count_tokens=backend.count_tokens
        )
        task = ExtractionTask(schema, text, services.reviews, settings.review_threshold)
        async for event in services.executor.execute(
            job, client="cli", source_ref=source_ref, structured=task
        ):
            if isinstance(event, ErrorEvent):
                raise click.ClickException(event.message)
            if isinstance(event, ResultEvent):
                sys.stdout.write(
                    msgspec.json.format(msgspec.json.encode(event.data), indent=2).decode() + "\n"
                )
                if show_fields:
                    _print_fields(event)
                review = f" · queued for review ({event.review.id})" if event.review else ""
                err.print(
                    f"[dim]run {event.run_id} · {schema.schema_id} · confidence {event.confidence:.2f}"
                    f"{review} · {time.perf_counter() - started:.1f} s[/]"
                )
    finally:
        await services.aclose()


def _print_fields(event: Any) -> None:
    table = Table("field", "confidence", "tokens", "cross-check", "rules", box=None, pad_edge=False)
    for path, report in event.fields.items():
        table.add_row(
            path,
            f"{report.confidence:.2f}",
            "-" if report.token_confidence is None else f"{report.token_confidence:.2f}",
            report.cross_check or "-",
            ", ".join(report.failed_rules) or ("repaired" if report.repaired else "-"),
        )
    err.print(table)
    for reason in event.review.reasons if event.review else []:
        err.print(f"[yellow]review:[/] {reason}")


@click.group(name="eval")
def eval_group() -> None:
    """Measure the AI tasks against labelled data."""


def _field_map(schema: Any, pairs: tuple[str, ...]) -> dict[str, str]:
    from deskpilot.inference.extraction.evaluate import FIELD_MAPS

    mapping = dict(FIELD_MAPS.get(schema.name, {}))
    for pair in pairs:
        label, _, field = pair.partition("=")
        if not field or field not in schema.decode_schema.get("properties", {}):
            raise click.BadParameter(
                f"{pair!r}: use LABEL=FIELD with a field of {schema.name}", param_hint="--field"
            )
        mapping[label] = field
    return mapping


@eval_group.command(name="extraction")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--schema", "schema_name", default="invoice", show_default=True)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="LABEL=FIELD",
    help="Map a dataset label to a schema field (receipt names such as company and total are known).",
)
@click.option("--deterministic", is_flag=True, help="Score the deterministic extractors alone (no model).")
@click.option("--limit", type=click.IntRange(1), help="Only the first N documents.")
@click.option(
    "--model", "model_path", type=click.Path(exists=True, dir_okay=False), help="A GGUF model file."
)
@click.option("--threads", type=click.IntRange(1), help="CPU threads for the model (default: all, up to 8).")
def eval_extraction(
    dataset: Path,
    schema_name: str,
    fields: tuple[str, ...],
    deterministic: bool,
    limit: int | None,
    model_path: str | None,
    threads: int | None,
) -> None:
    """Field-level precision, recall and F1, and document exact match, on a JSON Lines dataset of
    {"id", "text", "labels"} records."""
    from deskpilot.inference.extraction import SchemaError, load_schema
    from deskpilot.inference.extraction.evaluate import load_dataset

    settings = settings_or_usage_error(model_path=model_path, threads=threads)
    try:
        schema = load_schema(schema_name, settings.schemas_path)
        examples = load_dataset(dataset.read_text(encoding="utf-8").splitlines())[:limit]
    except (SchemaError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    field_map = {k: v for k, v in _field_map(schema, fields).items() if any(k in e.labels for e in examples)}
    if not field_map:
        raise click.UsageError("no dataset label maps to a schema field; add --field LABEL=FIELD")
    if deterministic:
        _report_deterministic(schema, field_map, examples)
    else:
        asyncio.run(_eval_model(schema, field_map, examples, settings))


def _report_deterministic(schema: Any, field_map: dict[str, str], examples: list[Any]) -> None:
    from deskpilot.inference.extraction import find_facts
    from deskpilot.inference.extraction.evaluate import facts_as_document, score

    started = time.perf_counter()
    pairs = [(e, facts_as_document(schema, find_facts(e.text))) for e in examples]
    report = score(schema, field_map, pairs)
    _print_report(f"deterministic extractors alone · {schema.schema_id} · {len(examples)} documents", report)
    out.print(f"time: {(time.perf_counter() - started) * 1000 / max(len(examples), 1):.1f} ms per document")


async def _eval_model(
    schema: Any,
    field_map: dict[str, str],
    examples: list[Any],
    settings: Settings,
) -> None:
    from deskpilot.inference import Finished
    from deskpilot.inference.extraction import Generated, extraction_job, finish_extraction
    from deskpilot.inference.extraction.evaluate import median_and_p90, same_value, score

    backend = ModelRegistry(settings).loader(EMBEDDED_PROFILE)()
    pairs, latencies, produced, cut, queued = [], [], [], 0, 0
    calibration: dict[str, list[int]] = {"< 0.3": [0, 0], "0.3-0.6": [0, 0], ">= 0.6": [0, 0]}
    try:
        for number, example in enumerate(examples, start=1):
            started = time.perf_counter()
            job = extraction_job(
                schema,
                text=example.text,
                context_length=backend.info.context_length,
                count_tokens=backend.count_tokens,
            )
            tokens, usage = [], None
            async for item in backend.stream(job.request):
                if isinstance(item, Finished):
                    usage = item.usage
                else:
                    tokens.append(item)
            assert usage is not None
            result = finish_extraction(
                schema,
                text=example.text,
                review_threshold=settings.review_threshold,
                generated=Generated(
                    text="".join(t.text for t in tokens), tokens=tokens, finish_reason=usage.finish_reason
                ),
            )
            latencies.append(time.perf_counter() - started)
            produced.append(usage.completion_tokens)
            cut += usage.finish_reason == "length"
            queued += bool(result.review_reasons)
            pairs.append((example, result.data))
            for label, field in field_map.items():
                gold, guess = example.labels.get(label), result.data.get(field)
                if gold in (None, "") or guess in (None, ""):
                    continue
                bucket = _bucket(result.fields[field].confidence)
                calibration[bucket][0] += same_value(schema.kind_of(field), guess, gold)
                calibration[bucket][1] += 1
            err.print(
                f"[dim]{number}/{len(examples)} {example.id}: {latencies[-1]:.2f} s, "
                f"{usage.completion_tokens} tokens[/]"
            )
    finally:
        backend.close()
    report = score(schema, field_map, pairs)
    info = backend.info
    _print_report(
        f"{info.model_id} ({info.backend}) · {schema.schema_id} · {len(examples)} documents", report
    )
    median, p90 = median_and_p90(latencies)
    out.print(
        f"latency per document: median {median:.2f} s, p90 {p90:.2f} s "
        f"({settings.threads or 'default'} threads); "
        f"output tokens: median {median_and_p90([float(p) for p in produced])[0]:.0f}; "
        f"cut at the token limit: {cut}/{len(examples)}"
    )
    out.print(f"queued for review: {queued}/{len(examples)} (threshold {settings.review_threshold})")
    out.print(
        "field accuracy by confidence (predicted and labelled fields): "
        + ", ".join(f"{name}: {right}/{total}" for name, (right, total) in calibration.items())
    )


def _bucket(confidence: float) -> str:
    return "< 0.3" if confidence < 0.3 else "0.3-0.6" if confidence < 0.6 else ">= 0.6"


def _print_report(title: str, report: Any) -> None:
    table = Table(
        "field", "support", "TP", "FP", "FN", "precision", "recall", "F1", title=title, title_justify="left"
    )
    for f in report.fields:
        table.add_row(
            f.field,
            str(f.support),
            str(f.tp),
            str(f.fp),
            str(f.fn),
            f"{f.precision:.3f}",
            f"{f.recall:.3f}",
            f"{f.f1:.3f}",
        )
    out.print(table)
    out.print(
        f"micro F1: {report.micro_f1:.3f} · document exact match: {report.exact_matches}/{report.documents} "
        f"= {report.exact_match:.3f}"
    )

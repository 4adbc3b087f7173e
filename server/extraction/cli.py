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
from deskpilot.server.extraction.service import ExtractionTask, calibration_store
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
        task = ExtractionTask(
            schema,
            text,
            services.reviews,
            settings.review_threshold,
            calibrations=calibration_store(settings.home),
            target_precision=settings.review_target_precision,
        )
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
    "--model",
    "model",
    metavar="PROFILE|FILE",
    help="A model profile (`[models.NAME]`; default: embedded) or a GGUF file.",
)
@click.option("--threads", type=click.IntRange(1), help="CPU threads for the model (default: all, up to 8).")
@click.option(
    "--generations",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the model's generations in this JSON Lines file and reuse those of the same request.",
)
@click.option(
    "--fit",
    is_flag=True,
    help="Fit the hybrid's calibration on this data set and keep it for the profile and template.",
)
@click.option(
    "--target-precision",
    type=click.FloatRange(0, 1, min_open=True),
    help="Share right of what is accepted without review (default: the review_target_precision setting).",
)
@click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("eval-extraction"),
    show_default=True,
    help="Folder for the PNG figures.",
)
@click.option(
    "--simulate-review",
    is_flag=True,
    help="Process the documents in order through the HTTP API, a simulated reviewer correcting each "
    "reviewed one with its labels; plot review rate and accuracy against documents seen.",
)
def eval_extraction(
    dataset: Path,
    schema_name: str,
    fields: tuple[str, ...],
    deterministic: bool,
    limit: int | None,
    model: str | None,
    threads: int | None,
    generations: Path | None,
    fit: bool,
    target_precision: float | None,
    plots: Path,
    simulate_review: bool,
) -> None:
    """Field-level precision, recall and F1, and document exact match, on a JSON Lines dataset of
    {"id", "text", "labels"} records: for the model alone, the extractors alone, and the hybrid that
    chooses per field by calibrated confidence; with the calibration's ECE, a reliability diagram, and the
    review rate at the target precision."""
    from deskpilot.inference.extraction import SchemaError, load_schema
    from deskpilot.inference.extraction.evaluate import load_dataset

    is_file = model is not None and Path(model).is_file()
    settings = settings_or_usage_error(model_path=model if is_file else None, threads=threads)
    profile = EMBEDDED_PROFILE if model is None or is_file else model
    try:
        schema = load_schema(schema_name, settings.schemas_path)
        examples = load_dataset(dataset.read_text(encoding="utf-8").splitlines())[:limit]
    except (SchemaError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    field_map = {k: v for k, v in _field_map(schema, fields).items() if any(k in e.labels for e in examples)}
    if not field_map:
        raise click.UsageError("no dataset label maps to a schema field; add --field LABEL=FIELD")
    target = target_precision or settings.review_target_precision
    if deterministic:
        _report_deterministic(schema, field_map, examples)
    elif simulate_review:
        from deskpilot.server.extraction.simulate import simulate_extraction_reviews

        report = simulate_extraction_reviews(
            msgspec.structs.replace(settings, review_target_precision=target),
            schema,
            examples,
            field_map,
            profile=profile,
            generations=generations,
            plots=plots,
        )
        out.print(report)
    else:
        run = EvalRun(schema, field_map, examples, settings, profile, dataset.name, target, plots)
        asyncio.run(run.evaluate(generations, fit=fit))


def _report_deterministic(schema: Any, field_map: dict[str, str], examples: list[Any]) -> None:
    from deskpilot.inference.extraction import find_facts
    from deskpilot.inference.extraction.evaluate import facts_as_document, score

    started = time.perf_counter()
    pairs = [(e, facts_as_document(schema, find_facts(e.text))) for e in examples]
    report = score(schema, field_map, pairs)
    _print_report(f"deterministic extractors alone · {schema.schema_id} · {len(examples)} documents", report)
    out.print(f"time: {(time.perf_counter() - started) * 1000 / max(len(examples), 1):.1f} ms per document")


class EvalRun:
    """One `eval extraction` with the model: generate, score the three ways, calibrate, report."""

    def __init__(
        self,
        schema: ExtractionSchema,
        field_map: dict[str, str],
        examples: list[Any],
        settings: Settings,
        profile: str,
        dataset: str,
        target: float,
        plots: Path,
    ) -> None:
        self.schema, self.field_map, self.examples, self.settings = schema, field_map, examples, settings
        self.profile, self.dataset, self.target, self.plots = profile, dataset, target, plots

    async def evaluate(self, generations: Path | None, *, fit: bool) -> None:
        from deskpilot.inference.extraction.evaluate import facts_as_document, median_and_p90, score
        from deskpilot.server.extraction.evaluation import generate_all

        registry = ModelRegistry(self.settings)
        try:
            backend = registry.loader(self.profile)()
        except Exception as exc:  # an unknown profile, weights that will not load: say which
            raise click.ClickException(f"model profile {self.profile!r}: {exc}") from exc
        try:
            outcomes = await generate_all(
                self.schema,
                self.examples,
                backend,
                review_threshold=self.settings.review_threshold,
                cache=generations,
                progress=lambda n, o: err.print(
                    f"[dim]{n}/{len(self.examples)} {o.example.id}: "
                    + ("stored" if o.reused else f"{o.generation.seconds:.2f} s")
                    + "[/]"
                ),
            )
        finally:
            backend.close()
        info = backend.info
        pairs = [(o.example, o.result.data) for o in outcomes]
        _print_report(
            f"model alone: {info.model_id} ({self.profile}) · {len(pairs)} documents",
            score(self.schema, self.field_map, pairs),
        )
        facts_pairs = [(o.example, facts_as_document(self.schema, o.facts)) for o in outcomes]
        _print_report("extractors alone", score(self.schema, self.field_map, facts_pairs))
        fresh = [o.generation for o in outcomes if not o.reused]
        if fresh:
            median, p90 = median_and_p90([g.seconds for g in fresh])
            out.print(
                f"latency per document: median {median:.2f} s, p90 {p90:.2f} s ({len(fresh)} generated)"
            )
        cut = sum(o.generation.finish_reason == "length" for o in outcomes)
        out.print(f"cut at the token limit: {cut}/{len(outcomes)}")
        self._hybrid(outcomes, fit=fit, model_id=info.model_id)

    def _hybrid(self, outcomes: list[Any], *, fit: bool, model_id: str) -> None:
        from deskpilot.inference.extraction.calibration import CalibrationStore
        from deskpilot.inference.extraction.fitting import fit_calibration
        from deskpilot.inference.templates import load_template

        template = load_template(self.schema.template).template_id
        store = CalibrationStore(self.settings.home / "calibration")
        examples = [o.example for o in outcomes]
        results = [(o.result, o.facts) for o in outcomes]
        measured = fit_calibration(
            self.schema,
            self.field_map,
            examples,
            results,
            profile=self.profile,
            template=template,
            model_id=model_id,
            dataset=self.dataset,
        )
        if fit:
            path = store.save(measured.calibration)
            out.print(f"calibration for {self.profile}/{template} kept in {path}")
        self._report_hybrid(measured, store.get(self.profile, template))

    def _report_hybrid(self, measured: Any, kept: Any) -> None:
        from deskpilot.inference.extraction.evaluate import score
        from deskpilot.inference.extraction.hybrid import review_reasons
        from deskpilot.server.extraction.plots import reliability_diagram

        title = "hybrid, per field by calibrated confidence (out of fold, 5 folds)"
        pairs = [(e, c.data) for e, c in zip(self.examples, measured.chosen, strict=True)]
        _print_report(title, score(self.schema, self.field_map, pairs))
        calibration = measured.calibration
        out.print(f"ECE (out of fold, {len(measured.probabilities)} field values): {calibration.ece:.3f}")
        png = reliability_diagram(
            self.plots / "reliability.png",
            measured.probabilities,
            measured.outcomes,
            title=f"{self.profile} · {calibration.template} · {self.dataset}",
        )
        out.print(f"reliability diagram: {png}")
        threshold = calibration.threshold(self.target)
        reviewed = [bool(review_reasons(c, calibration, threshold)) for c in measured.chosen]
        accepted = [r for r, queued in zip(measured.document_right, reviewed, strict=True) if not queued]
        rate = sum(reviewed) / max(len(reviewed), 1)
        out.print(
            f"review threshold for target precision {self.target:.2f}: {threshold:.3f}; review rate "
            f"{sum(reviewed)}/{len(reviewed)} = {rate:.2f}; accepted without review {len(accepted)}, "
            f"of which right {sum(accepted)}"
        )
        if kept is None:
            out.print("[yellow]no calibration kept for this profile and template: run with --fit[/]")


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

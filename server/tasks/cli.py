"""`deskpilot summarize FILE|-`: a summary streamed to the terminal, recorded in lineage (client "cli")."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from deskpilot.inference import Email, Job, summarize_job
from deskpilot.server.core.cli import cli_parts, read_input, settings_or_usage_error
from deskpilot.server.core.wire import DoneEvent, ErrorEvent, MetaEvent, TokenEvent
from deskpilot.server.runs import RunOptions
from deskpilot.server.services import Services

__all__ = ["summarize"]

err = Console(stderr=True)


@click.command()
@click.argument("source", metavar="FILE|-")
@click.option("--sentences", type=click.IntRange(1, 10), default=3, show_default=True)
@click.option(
    "--model", "model_path", type=click.Path(exists=True, dir_okay=False), help="A GGUF model file."
)
@click.option("--profile", help="A model profile (`deskpilot models list`) instead of the task's route.")
def summarize(source: str, sentences: int, model_path: str | None, profile: str | None) -> None:
    """Summarize a text or .eml file (or standard input), streaming to the terminal."""
    if source != "-" and not Path(source).is_file():
        raise click.BadParameter(f"no such file: {source}", param_hint="FILE")
    text, mail = read_input(source)
    services = Services(settings_or_usage_error(model_path=model_path), max_waiting=0, **cli_parts())
    source_ref = None if source == "-" else str(Path(source).resolve())
    asyncio.run(_summarize(services, text, mail, sentences, source_ref, RunOptions(profile=profile)))


async def _summarize(
    services: Services,
    text: str | None,
    mail: Email | None,
    sentences: int,
    source_ref: str | None,
    options: RunOptions,
) -> None:
    started = time.perf_counter()
    try:

        def job(context_length: int) -> Job:
            return summarize_job(context_length=context_length, text=text, email=mail, sentences=sentences)

        events = services.executor.execute(job, client="cli", source_ref=source_ref, options=options)
        model = "?"
        async for event in events:
            if isinstance(event, MetaEvent):
                model = f"{event.profile} · {event.model}"
            if isinstance(event, TokenEvent):
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif isinstance(event, DoneEvent):
                sys.stdout.write("\n")
                sys.stdout.flush()
                err.print(
                    f"[dim]run {event.run_id} · {model} · first token "
                    f"{event.ttft_ms or 0:.0f} ms · {event.usage.completion_tokens} tokens · "
                    f"{time.perf_counter() - started:.1f} s[/]"
                )
            elif isinstance(event, ErrorEvent):
                raise click.ClickException(event.message)
    finally:
        await services.aclose()

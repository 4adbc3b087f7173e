"""`deskpilot index PATH... [--exclude GLOB] [--watch]`: index documents with a progress bar.

The command is a plain click command; the server's CLI attaches it to the `deskpilot` group. Tests and
embedders may pass `obj={"embedder": ...}` (see `core/cli.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from deskpilot.indexes import IndexProgress, IndexSummary
from deskpilot.indexes.embedding import Embedder, SentenceTransformerEmbedder
from deskpilot.indexes.index import DocumentIndex, index_folder
from deskpilot.server.core.cli import cancel_on_ctrl_c, cli_parts, settings_or_usage_error

__all__ = ["index_command"]

_SHOW_SKIPPED = 20


def _run(
    index: DocumentIndex,
    paths: Sequence[Path],
    exclude: Sequence[str],
    console: Console,
    cancel: threading.Event,
) -> IndexSummary:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[chunks]} chunks"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("scanning", total=None, chunks=0)

        def update(p: IndexProgress) -> None:
            name = Path(p.current).name if p.current else ""
            label = f"{p.phase} {name[:40]}" if name else p.phase
            bar.update(
                task,
                description=label,
                total=p.files_total or None,
                completed=p.files_done,
                chunks=p.chunks_done,
            )

        return index.index_paths(list(paths) or None, exclude=exclude, progress=update, cancel=cancel)


def _print_summary(summary: IndexSummary, console: Console) -> None:
    click.echo(summary.line())
    for skipped in summary.skipped[:_SHOW_SKIPPED]:
        detail = f" ({skipped.detail})" if skipped.detail else ""
        console.print(f"  skipped [yellow]{skipped.reason}[/]: {skipped.path}{detail}", highlight=False)
    if len(summary.skipped) > _SHOW_SKIPPED:
        console.print(f"  … and {len(summary.skipped) - _SHOW_SKIPPED} more (see the index status)")


@click.command("index")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--exclude",
    "-x",
    "exclude",
    multiple=True,
    metavar="GLOB",
    help="Never index paths matching GLOB (repeatable). Without '/' it matches a file or folder "
    "name ('*.tmp', 'Private'); with '/' the path ('*/Legal/*').",
)
@click.option("--watch", is_flag=True, help="Keep running and re-index when files change (Ctrl+C stops).")
@click.pass_context
def index_command(ctx: click.Context, paths: tuple[Path, ...], exclude: tuple[str, ...], watch: bool) -> None:
    """Index documents (.txt .md .html .eml .msg .docx .pdf) so questions can cite them.

    Without PATH, re-indexes every folder indexed before. Only new and changed files are embedded;
    files that disappeared leave the index; unreadable files are skipped with a reason.
    """
    settings = settings_or_usage_error()
    embedder: Embedder | None = cli_parts(ctx).get("embedder")
    console = Console(stderr=True)
    with DocumentIndex(index_folder(settings.home), embedder=embedder) as index:
        if not paths and not index.roots():
            raise click.UsageError("give at least one file or folder to index")
        if isinstance(index.embedder, SentenceTransformerEmbedder):
            index.embedder.start_warm_up()  # loads torch while the files are scanned
        with cancel_on_ctrl_c() as cancel:
            summary = _run(index, paths, exclude, console, cancel)
            _print_summary(summary, console)
            if watch and not cancel.is_set():
                from deskpilot.indexes.watch import watch as watch_paths

                count = len(paths) or len(index.roots())
                console.print(f"watching {count} path(s) for changes; Ctrl+C stops", highlight=False)
                watch_paths(
                    index,
                    list(paths) or None,
                    exclude=exclude,
                    stop=cancel,
                    on_summary=lambda s: _print_summary(s, console),
                )

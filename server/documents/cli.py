"""`deskpilot index PATH... [--exclude GLOB] [--watch]`: index documents with a progress bar.

Like the server, the command reads only inside the folders the user chose (`roots.py`):
`--add-root FOLDER` adds one (kept in `<home>/index-roots.json`, where the server reads it too),
`--remove-root FOLDER` forgets one, `--roots` lists them. A PATH outside them is an error line; without
PATH, the folders indexed before are indexed again (and watched) only where they are still inside.

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
from deskpilot.server.documents.roots import IndexRoots, NotInRoots, RootRefused

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
@click.option(
    "--add-root",
    "add_roots",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FOLDER",
    help="Let Deskpilot index inside FOLDER from now on (repeatable; the server too).",
)
@click.option(
    "--remove-root",
    "remove_roots",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FOLDER",
    help="No longer index inside FOLDER (one added before; repeatable).",
)
@click.option("--roots", "list_roots", is_flag=True, help="List the folders Deskpilot may index.")
@click.pass_context
def index_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    exclude: tuple[str, ...],
    watch: bool,
    add_roots: tuple[Path, ...],
    remove_roots: tuple[Path, ...],
    list_roots: bool,
) -> None:
    """Index documents (.txt .md .html .eml .msg .docx .pdf) so questions can cite them.

    Only folders you chose are read: your Documents folder (or what IT set as `index_roots`) and
    those added with --add-root or in the task pane's Settings. Without PATH, re-indexes every folder
    indexed before. Only new and changed files are embedded; files that disappeared leave the index;
    unreadable files are skipped with a reason.
    """
    settings = settings_or_usage_error()
    roots = IndexRoots(settings)
    if add_roots or remove_roots or list_roots:
        _change_roots(roots, add_roots, remove_roots, list_roots)
        if not paths:
            return
    for path in paths:
        try:
            roots.check(str(path))
        except NotInRoots as exc:
            raise click.ClickException(str(exc)) from exc
    embedder: Embedder | None = cli_parts(ctx).get("embedder")
    console = Console(stderr=True)
    with DocumentIndex(index_folder(settings.home), embedder=embedder) as index:
        if not paths and not index.roots():
            raise click.UsageError("give at least one file or folder to index")
        targets, extra = _targets(index, roots, paths, exclude, console)
        if targets == []:
            raise click.ClickException(
                "none of the folders indexed before is in a folder you chose for indexing; "
                "add one with `deskpilot index --add-root FOLDER`"
            )
        if isinstance(index.embedder, SentenceTransformerEmbedder):
            index.embedder.start_warm_up()  # loads torch while the files are scanned
        with cancel_on_ctrl_c() as cancel:
            summary = _run(index, targets or (), (*exclude, *extra), console, cancel)
            _print_summary(summary, console)
            if watch and not cancel.is_set():
                from deskpilot.indexes.watch import watch as watch_paths

                count = len(targets or ()) or len(index.roots())
                console.print(f"watching {count} path(s) for changes; Ctrl+C stops", highlight=False)
                watch_paths(
                    index,
                    targets or None,
                    exclude=(*exclude, *extra),
                    stop=cancel,
                    on_summary=lambda s: _print_summary(s, console),
                )


def _change_roots(roots: IndexRoots, add: tuple[Path, ...], remove: tuple[Path, ...], show: bool) -> None:
    try:
        for folder in add:
            click.echo(f"added {roots.add(folder)} to the folders Deskpilot may index")
        for folder in remove:
            gone = roots.remove(folder)
            click.echo(f"removed {folder}" if gone else f"{folder} was not an added folder")
    except RootRefused as exc:
        raise click.ClickException(str(exc)) from exc
    if show:
        for root in roots.listing():
            state = "" if root.exists else " (missing)"
            click.echo(f"{root.path}\t{root.source}{state}")


def _targets(
    index: DocumentIndex,
    roots: IndexRoots,
    paths: tuple[Path, ...],
    exclude: tuple[str, ...],
    console: Console,
) -> tuple[list[Path] | None, tuple[str, ...]]:
    """What to index: the PATHs; else None (every folder indexed before) when all of them are still
    inside a root; else those that are, named, with the patterns they were indexed with."""
    if paths:
        return list(paths), ()
    remembered = index.roots()
    inside = {p: patterns for p, patterns in remembered.items() if roots.contains(p)}
    if len(inside) == len(remembered):
        return None, ()
    for outside in sorted(set(remembered) - set(inside)):
        console.print(f"not indexed again (not in a folder you chose): {outside}", highlight=False)
    patterns = tuple(dict.fromkeys(p for kept in inside.values() for p in kept))
    return [Path(p) for p in inside], patterns

"""`deskpilot audit purge`, `audit erase --subject EMAIL` and `audit hold set|release|show`.

Each acts on the app data folder's files directly (lineage, the document index, the sync state), so it works
whether or not the server runs; the server and its worker see the change at their next read. Who ran it is
recorded in the chained event (`--actor`, default the operating-system user).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager

import click
import msgspec

from deskpilot.indexes import DocumentIndex, index_folder
from deskpilot.indexes.embedding import Embedder
from deskpilot.server.core.cli import cli_parts, settings_or_usage_error
from deskpilot.server.lineage import LineageStore
from deskpilot.server.ops.retention import LegalHold, Retention

__all__ = ["erase_command", "hold_group", "purge_command"]

_actor_option = click.option(
    "--actor",
    default=None,
    metavar="NAME",
    help="Who is acting, as the chained event records it. Default: the operating-system user.",
)
_dry_run_option = click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")


@contextmanager
def _retention() -> Iterator[Retention]:
    settings = settings_or_usage_error()
    if not settings.db_path.is_file():
        raise click.ClickException(f"no lineage database at {settings.db_path}")
    embedder: Embedder | None = cli_parts().get("embedder")
    index: DocumentIndex | None = None

    def open_index() -> DocumentIndex:
        nonlocal index
        if index is None:
            index = DocumentIndex(index_folder(settings.home), embedder=embedder)
        return index

    with LineageStore(settings.db_path) as lineage:
        try:
            yield Retention(lineage, settings, index=open_index)
        except (LegalHold, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            if index is not None:
                index.close()


def _lines(counts: dict[str, object], skip: tuple[str, ...]) -> None:
    for name, value in counts.items():
        if name not in skip:
            click.echo(f"  {name.replace('_', ' ')}: {value}")


@click.command("purge")
@_dry_run_option
@_actor_option
def purge_command(dry_run: bool, actor: str | None) -> None:
    """Purge what the retention settings no longer allow to keep (the worker does it hourly)."""
    with _retention() as retention:
        if not retention.cutoffs(retention.lineage.now()):
            click.echo("no retention period is set (retention_*_days): nothing to purge")
            return
        report = retention.purge(dry_run=dry_run, actor=actor or getpass.getuser())
    click.echo(f"{'would purge' if dry_run else 'purged'} {report.total()} item(s):")
    _lines(msgspec.structs.asdict(report), ("at", "dry_run", "event"))
    if report.event:
        click.echo(f"recorded as event {report.event}")


@click.command("erase")
@click.option("--subject", required=True, metavar="EMAIL", help="The person's email address.")
@_dry_run_option
@_actor_option
def erase_command(subject: str, dry_run: bool, actor: str | None) -> None:
    """Remove a person's data: runs, reviews, examples, the index (synced mail included) and sync payloads.

    `deskpilot audit verify` still passes afterwards: the audit chain keeps each removed text's digest.
    """
    with _retention() as retention:
        report = retention.erase(subject, actor=actor or getpass.getuser(), dry_run=dry_run)
    click.echo(f"{'would erase' if dry_run else 'erased'} subject {report.subject_digest}:")
    _lines(msgspec.structs.asdict(report), ("subject_digest", "dry_run", "event"))
    if report.event:
        click.echo(f"recorded as event {report.event}")


@click.group("hold")
def hold_group() -> None:
    """Legal hold: while one is in place, nothing is purged or erased."""


@hold_group.command("set")
@click.option("--reason", required=True, help="The matter or ticket the hold is for.")
@_actor_option
def hold_set(reason: str, actor: str | None) -> None:
    with _retention() as retention:
        hold = retention.set_hold(reason, actor=actor or getpass.getuser())
    click.echo(f"legal hold in place since {hold.since} ({hold.reason}), set by {hold.actor}")


@hold_group.command("release")
@click.option("--reason", required=True, help="Why the hold ends.")
@_actor_option
def hold_release(reason: str, actor: str | None) -> None:
    with _retention() as retention:
        released = retention.release_hold(reason, actor=actor or getpass.getuser())
    click.echo("legal hold released" if released else "there was no legal hold")


@hold_group.command("show")
def hold_show() -> None:
    with _retention() as retention:
        hold = retention.hold()
    if hold is None:
        click.echo("no legal hold")
    else:
        click.echo(f"legal hold in place since {hold.since} ({hold.reason}), set by {hold.actor}")

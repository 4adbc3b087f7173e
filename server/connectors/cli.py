"""`deskpilot login | logout | whoami | sync [--watch]`: Microsoft 365 from the terminal.

Attached to the `deskpilot` group by the server's CLI. Tests and embedders may pass
`obj={"embedder": ...}` (as for `deskpilot index`) to sync into an index with another embedder.
"""

from __future__ import annotations

import threading
import webbrowser
from typing import TYPE_CHECKING

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

from deskpilot.server.core.cli import cli_parts, settings_or_usage_error
from deskpilot.server.services import Services
from deskpilot.server.settings import Settings

if TYPE_CHECKING:  # imported in the commands: msal and O365 stay out of `deskpilot --help`
    from deskpilot.server.connectors.auth import GraphAuth
    from deskpilot.server.connectors.sync import SyncSummary

__all__ = ["login", "logout", "sync", "whoami"]

err = Console(stderr=True)


def _auth(settings: Settings) -> GraphAuth:
    from deskpilot.server.connectors.auth import AuthError, GraphAuth

    try:
        return GraphAuth(settings)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from exc


def _has_browser() -> bool:
    try:
        return webbrowser.get().name not in ("www-browser", "lynx", "links", "w3m", "elinks")
    except webbrowser.Error:
        return False


@click.command()
@click.option(
    "--device-code",
    "mode",
    flag_value="device",
    help="Sign in on any device with a code (default without a browser).",
)
@click.option("--browser", "mode", flag_value="browser", help="Sign in in this computer's browser.")
@click.option(
    "--allow-insecure-storage",
    is_flag=True,
    help="Store the tokens even where the only keyring is a plaintext file (not recommended).",
)
def login(mode: str | None, allow_insecure_storage: bool) -> None:
    """Sign in to Microsoft 365 (read-only: mail, files, calendar). Tokens go to the OS keyring only."""
    from deskpilot.server.connectors.auth import AuthError
    from deskpilot.server.connectors.tokens import InsecureKeyringError

    settings = settings_or_usage_error(allow_insecure_token_storage=True if allow_insecure_storage else None)
    auth = _auth(settings)
    mode = mode or ("browser" if _has_browser() else "device")
    try:
        who = (
            auth.login_interactive()
            if mode == "browser"
            else auth.login_device_code(lambda message: err.print(f"[bold]{message}[/]", highlight=False))
        )
    except InsecureKeyringError as exc:
        raise click.ClickException(str(exc)) from exc
    except AuthError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Signed in as {who.username} ({who.name}); tokens kept in {who.keyring}.")


@click.command()
def logout() -> None:
    """Sign out: remove the Microsoft 365 tokens from the keyring (the synced index stays)."""
    auth = _auth(settings_or_usage_error())
    click.echo("Signed out: the tokens are removed from the keyring." if auth.logout() else "Not signed in.")


@click.command()
@click.option("--online", is_flag=True, help="Also ask Microsoft 365 (checks that the sign-in still works).")
def whoami(online: bool) -> None:
    """Who is signed in to Microsoft 365."""
    from deskpilot.server.connectors.auth import AuthError
    from deskpilot.server.connectors.graph import GraphClient

    settings = settings_or_usage_error()
    auth = _auth(settings)
    who = auth.whoami()
    if who is None:
        raise click.ClickException("not signed in to Microsoft 365: run `deskpilot login`")
    click.echo(
        f"{who.username} ({who.name}), tenant {who.tenant_id}, via {who.authority}; keyring {who.keyring}"
    )
    if online:
        client = GraphClient(auth, settings)
        try:
            user = client.me()
        except AuthError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            client.close()
        click.echo(f"Microsoft 365 says: {user.display_name} <{user.user_principal_name}>")


def _sync_once(auth: GraphAuth, services: Services, cancel: threading.Event, full: bool) -> SyncSummary:
    from deskpilot.server.connectors.graph import GraphClient
    from deskpilot.server.connectors.state import SyncState
    from deskpilot.server.connectors.sync import GraphSync, SyncProgress

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[pages]} pages, {task.fields[retries]} retries"),
        TimeElapsedColumn(),
    )
    settings, index = services.settings, services.index
    trigger = services.mail_trigger
    state = SyncState(settings.sync_db_path)
    client = GraphClient(auth, settings, cancel=cancel)
    try:
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task("starting", total=None, pages=0, retries=0)

            def update(p: SyncProgress) -> None:
                label = f"{p.phase} {p.scope[:30]}".strip()
                bar.update(
                    task,
                    description=label,
                    total=p.items_total,
                    completed=p.items_done,
                    pages=p.pages,
                    retries=p.retries,
                )

            return GraphSync(client, index, state, settings, progress=update, on_new_mail=trigger).run(
                full=full
            )
    finally:
        client.close()
        state.close()


@click.command()
@click.option("--watch", is_flag=True, help="Keep syncing every graph_sync_interval_seconds (Ctrl+C stops).")
@click.option("--full", is_flag=True, help="Forget the delta links and enumerate everything again.")
@click.pass_context
def sync(ctx: click.Context, watch: bool, full: bool) -> None:
    """Sync Microsoft 365 mail, OneDrive files and calendar events into the document index."""
    from deskpilot.server.connectors.auth import AuthError
    from deskpilot.server.connectors.sync import SyncBusy, SyncLock
    from deskpilot.server.core.cli import cancel_on_ctrl_c

    settings = settings_or_usage_error()
    auth = _auth(settings)
    if auth.whoami() is None:
        raise click.ClickException("not signed in to Microsoft 365: run `deskpilot login`")
    lock = SyncLock(settings.home / "graph-sync.lock")
    try:
        lock.acquire()
    except SyncBusy as exc:
        raise click.ClickException(str(exc)) from exc
    services = Services(settings, **cli_parts(ctx))
    try:
        with cancel_on_ctrl_c() as cancel:
            while True:
                try:
                    summary = _sync_once(auth, services, cancel, full)
                except AuthError as exc:
                    raise click.ClickException(str(exc)) from exc
                click.echo(summary.line())
                for error in summary.errors:
                    err.print(f"  [yellow]not finished[/]: {error}", highlight=False)
                full = False
                if not watch or cancel.is_set():
                    break
                err.print(
                    f"next sync in {settings.graph_sync_interval_seconds:.0f} s; Ctrl+C stops",
                    highlight=False,
                )
                if cancel.wait(settings.graph_sync_interval_seconds):
                    break
            if summary.errors and not watch:
                ctx.exit(1)
    finally:
        services.close()
        lock.release()

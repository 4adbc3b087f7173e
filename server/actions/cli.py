"""`deskpilot webhook-secret NAME`: the signing secret of webhook actions, in the OS keyring."""

from __future__ import annotations

import sys

import click
from rich.console import Console

__all__ = ["webhook_secret"]

err = Console(stderr=True)


@click.command("webhook-secret")
@click.argument("name")
@click.option("--delete", is_flag=True, help="Remove the secret from the keyring.")
def webhook_secret(name: str, delete: bool) -> None:
    """Store the HMAC secret NAME for webhook actions in the OS keyring (read from standard input)."""
    from deskpilot.server.actions.secrets import WebhookSecrets

    secrets = WebhookSecrets()
    if delete:
        secrets.delete(name)
        click.echo(f"deleted webhook secret {name!r}")
        return
    value = (
        sys.stdin.readline().rstrip("\n")
        if not sys.stdin.isatty()
        else click.prompt(f"secret for {name}", hide_input=True)
    )
    if not value:
        raise click.UsageError("the secret is empty")
    secrets.set(name, value)
    click.echo(f"stored webhook secret {name!r} in the keyring")

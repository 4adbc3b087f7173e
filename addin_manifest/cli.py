"""`deskpilot manifest`: write the Outlook and Word add-in manifests for this machine's server."""

from __future__ import annotations

from pathlib import Path

import click

from deskpilot.addin_manifest._render import HOSTS, render, write_manifests
from deskpilot.addin_manifest._validate import validate as validate_manifest
from deskpilot.server.core.token import ensure_token
from deskpilot.server.settings import SettingsError, load_settings

__all__ = ["manifest"]

_INSTALL_HINT = (
    "Install them in Outlook with Get Add-ins > My add-ins > Add a custom add-in > Add from file,\n"
    "and in Word with Insert > Add-ins > Upload My Add-in (or a shared-folder catalog);\n"
    "IT can deploy both centrally."
)


@click.command("manifest")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write the manifests to.  [default: <app data folder>/manifests]",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port of the Deskpilot server the manifests point at.  [default: the configured port]",
)
@click.option(
    "--validate/--no-validate",
    "check",
    default=True,
    show_default=True,
    help="Check the manifests against Microsoft's schemas (offline) before writing them.",
)
def manifest(out_dir: Path | None, port: int | None, check: bool) -> None:
    """Write the Outlook and Word add-in manifests (they carry your access token) and print their paths."""
    try:
        settings = load_settings(port=port)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    base_url = settings.base_url
    token = ensure_token(settings.token_path)  # the pane's start URL carries it: these are yours alone
    if check:
        # Validate before writing, so an invalid manifest never replaces a good one.
        problems = [
            f"{host}: {error}" for host in HOSTS for error in validate_manifest(render(host, base_url, token))
        ]
        if problems:
            raise click.ClickException("the generated manifests are not valid:\n" + "\n".join(problems))
    for path in write_manifests(out_dir or settings.home / "manifests", base_url, token):
        click.echo(str(path))
    if not base_url.startswith("https://"):
        click.echo(f"warning: Office loads add-ins only over https, and {base_url} is not.", err=True)
    click.echo(_INSTALL_HINT, err=True)

"""The `deskpilot` command: serve, summarize, audit (and the commands later layers attach)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from .settings import SettingsError, load_settings

__all__ = ["main"]

err = Console(stderr=True)


@click.group()
@click.version_option(package_name="deskpilot")
def main() -> None:
    """Deskpilot: a private AI assistant for Outlook and Word, running on this computer."""


@main.command()
@click.option("--http", "plain_http", is_flag=True, help="Serve plain HTTP (tests and development only).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port on the loopback interface.")
@click.option("--host", help="Loopback address to listen on (default 127.0.0.1).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False), help="A GGUF model file.")
@click.option("--worker/--no-worker", "with_worker", default=None,
              help="Start the action and workflow consumer as a child process (default: the `worker` setting).")
def serve(plain_http: bool, port: int | None, host: str | None, model_path: str | None,
          with_worker: bool | None) -> None:
    """Start the local server with the task pane and the model."""
    from .app import create_app
    from .runner import serve as run
    from .runner import worker_process

    try:
        settings = load_settings(port=port, host=host, model_path=model_path, https=False if plain_http else None,
                                 worker=with_worker)
        app = create_app(settings)
        err.print(f"Deskpilot on [bold]{settings.base_url}[/] (data in {settings.home})")
        with worker_process(settings):
            run(app, settings)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def _read_input(source: str) -> tuple[str | None, object | None]:
    """Text, or an email parsed with the stdlib when the input looks like one (.eml or RFC 822 headers)."""
    from deskpilot.inference import Email

    raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    if not raw.strip():
        raise click.BadParameter("the input is empty", param_hint="FILE")
    looks_like_mail = source.lower().endswith(".eml") or raw.lstrip()[:200].lower().startswith(
        (b"from:", b"subject:", b"received:", b"return-path:", b"message-id:", b"date:", b"to:"))
    if not looks_like_mail:
        return raw.decode("utf-8", errors="replace"), None
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    return None, Email(body=body, subject=str(msg.get("subject", "")), sender=str(msg.get("from", "")),
                       to=tuple(a.strip() for a in str(msg.get("to", "")).split(",") if a.strip()),
                       date=str(msg["date"]) if msg["date"] else None)


@main.command()
@click.argument("source", metavar="FILE|-")
@click.option("--sentences", type=click.IntRange(1, 10), default=3, show_default=True)
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False), help="A GGUF model file.")
def summarize(source: str, sentences: int, model_path: str | None) -> None:
    """Summarize a text or .eml file (or standard input), streaming to the terminal."""
    if source != "-" and not Path(source).is_file():
        raise click.BadParameter(f"no such file: {source}", param_hint="FILE")
    text, mail = _read_input(source)
    settings = load_settings(model_path=model_path)
    asyncio.run(_summarize(settings, text, mail, sentences, source))


async def _summarize(settings, text, mail, sentences, source) -> None:  # type: ignore[no-untyped-def]
    from deskpilot.inference import summarize_job
    from deskpilot.inference.llama import LlamaCppBackend

    from .lineage import LineageStore
    from .model_host import ModelHost
    from .runs import RunExecutor
    from .schemas import DoneEvent, ErrorEvent, TokenEvent

    settings.home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    backend = LlamaCppBackend(Path(settings.model_path) if settings.model_path else None,
                              context_length=settings.context_length, threads=settings.threads,
                              cache_dir=settings.cache_dir)
    lineage = LineageStore(settings.db_path)
    try:
        executor = RunExecutor(ModelHost(backend, max_waiting=0), lineage, retain_inputs=settings.retain_inputs)
        job = summarize_job(context_length=backend.info.context_length, text=text, email=mail,
                            sentences=sentences)
        source_ref = None if source == "-" else str(Path(source).resolve())
        async for event in executor.execute(job, client="cli", source_ref=source_ref):
            if isinstance(event, TokenEvent):
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif isinstance(event, DoneEvent):
                sys.stdout.write("\n")
                sys.stdout.flush()
                err.print(f"[dim]run {event.run_id} · {backend.info.model_id} · first token "
                          f"{event.ttft_ms or 0:.0f} ms · {event.usage.completion_tokens} tokens · "
                          f"{time.perf_counter() - started:.1f} s[/]")
            elif isinstance(event, ErrorEvent):
                raise click.ClickException(event.message)
    finally:
        lineage.close()
        backend.close()


def _attach_optional_commands() -> None:
    """Commands owned by other layers register here; each layer keeps its CLI next to its code."""
    from deskpilot.addin_manifest.cli import manifest
    from deskpilot.indexes.cli import index_command
    from deskpilot.installer.cli import doctor, install, uninstall

    from .actions.cli import events_group, webhook_secret, worker
    from .connectors.cli import login, logout, sync, whoami
    from .extraction_cli import eval_group, extract
    from .lineage.cli import audit

    main.add_command(audit)
    main.add_command(extract)
    main.add_command(eval_group)
    main.add_command(index_command)
    main.add_command(manifest)
    for command in (install, uninstall, doctor):
        main.add_command(command)
    for command in (worker, events_group, webhook_secret):
        main.add_command(command)
    for command in (login, logout, whoami, sync):
        main.add_command(command)


_attach_optional_commands()

if __name__ == "__main__":
    main()

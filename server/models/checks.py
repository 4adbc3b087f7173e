"""`deskpilot doctor`'s model checks: every profile, without loading weights or generating.

A llama.cpp profile's file is there and is a GGUF; an EXL2 folder has its config and tensors and there is
CUDA for it; an OpenAI-compatible server answers `GET /models` with the key from the keyring and lists the
profile's model. Each line names the profile and, when wrong, what to do. (`deskpilot models test NAME`
goes further: it loads the model, generates, checks JSON and measures speed.)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx

from deskpilot.inference import BackendError
from deskpilot.server.models.registry import ModelRegistry, api_key
from deskpilot.server.settings import ModelProfile, Settings, SettingsError

__all__ = ["Check", "model_checks"]


class Check(NamedTuple):
    ok: bool
    what: str
    fix: str = ""


def model_checks(settings: Settings) -> Iterator[Check]:
    try:
        registry = ModelRegistry(settings)
    except SettingsError as exc:
        yield Check(False, "model profiles and routes load", str(exc))
        return
    for name, p in registry.profiles.items():
        if p.backend == "llama.cpp":
            yield _gguf(name, p)
        elif p.backend == "exllamav2":
            yield from _exl2(name, p)
        else:
            yield _server(name, p)
    yield _threads()


def _gguf(name: str, p: ModelProfile) -> Check:
    if p.path is None:
        from deskpilot.inference.llama import embedded_model_path

        path = embedded_model_path()
    else:
        path = Path(p.path).expanduser()
    fix = f"set models.{name}.path to a GGUF file, or `deskpilot models pull {name} ...`"
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        return Check(False, f"model profile {name!r}: {path} cannot be read ({exc.strerror})", fix)
    return Check(magic == b"GGUF", f"model profile {name!r}: {path} is a GGUF file", fix)


def _exl2(name: str, p: ModelProfile) -> Iterator[Check]:
    folder = Path(p.path or "").expanduser()
    has_model = (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))
    yield Check(has_model, f"model profile {name!r}: {folder} is an EXL2 model folder", "point path at one")
    ready = importlib.util.find_spec("exllamav2") is not None
    if ready:
        import torch

        ready = bool(torch.cuda.is_available())
    yield Check(
        ready,
        f"model profile {name!r}: ExLlamaV2 and an NVIDIA GPU with CUDA are there",
        "install Deskpilot's gpu extra on a machine with an NVIDIA GPU, or route its tasks elsewhere",
    )


def _server(name: str, p: ModelProfile) -> Check:
    where = f"model profile {name!r}: {p.base_url}"
    try:
        key = api_key(name, p)
    except BackendError as exc:
        return Check(False, f"{where}: API key", str(exc))
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.get(
            f"{(p.base_url or '').rstrip('/')}/models", headers=headers, timeout=p.connect_timeout + 5
        )
    except httpx.HTTPError as exc:
        return Check(False, f"{where} answers", f"the server cannot be reached: {exc}")
    if r.status_code in (401, 403):
        return Check(False, f"{where} accepts the API key", f"the server refused it ({r.status_code})")
    if r.status_code != 200:
        return Check(False, f"{where} answers GET /models", f"it answered {r.status_code}")
    try:
        listed = [str(m.get("id")) for m in r.json().get("data", []) if isinstance(m, dict)]
    except ValueError:
        return Check(False, f"{where} answers GET /models", "the answer is not JSON: is this the API root?")
    if p.model and p.model not in listed:
        fix = f"the server lists {', '.join(listed[:5]) or 'none'}; set models.{name}.model to one of them"
        return Check(False, f"{where} serves {p.model!r}", fix)
    return Check(True, f"{where} answers and serves {p.model or listed[0] if listed else 'a model'}")


def _threads() -> Check:
    """The rule llama.cpp requests use when `threads` is not set: threads from the cores free now."""
    from deskpilot.inference.llama import default_threads
    from deskpilot.inference.threads import choose_threads

    return Check(True, f"llama.cpp threads for a request now: {choose_threads(default_threads()).describe()}")

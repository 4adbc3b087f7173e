"""Versioned prompt templates, one TOML file each in `inference/templates/`.

A template's identity is its name plus the sha256 of its file: change one character of the prompt and
lineage shows a new hash, so a reviewer can tell exactly which words produced an output. `version` is the
human-facing number we bump when the intent changes; the hash is what proves it.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from deskpilot.inference._types import Message

__all__ = ["PromptTemplate", "TemplateError", "load_template"]


class TemplateError(ValueError):
    pass


class _TemplateFile(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    version: int
    description: str
    system: str
    user: str
    max_tokens: int = 256
    temperature: float = 0.2


class PromptTemplate(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    content_hash: str  # "sha256:<hex>" of the template file
    system: str
    user: str
    max_tokens: int
    temperature: float

    @property
    def template_id(self) -> str:
        return f"{self.name}@v{self.version}"

    def render(self, **values: Any) -> tuple[Message, ...]:
        try:
            return (
                Message("system", self.system.format_map(values).strip()),
                Message("user", self.user.format_map(values).strip()),
            )
        except KeyError as exc:
            raise TemplateError(f"template {self.template_id} needs a value for {exc}") from exc


def parse_template(data: bytes, origin: str) -> PromptTemplate:
    try:
        raw = msgspec.toml.decode(data, type=_TemplateFile)
    except msgspec.DecodeError as exc:
        raise TemplateError(f"{origin}: {exc}") from exc
    return PromptTemplate(
        name=raw.name,
        version=raw.version,
        content_hash="sha256:" + hashlib.sha256(data).hexdigest(),
        system=raw.system,
        user=raw.user,
        max_tokens=raw.max_tokens,
        temperature=raw.temperature,
    )


@cache
def load_template(name: str, folder: Path | None = None) -> PromptTemplate:
    """Load `<name>.toml` from `folder`, or from the templates shipped in this package."""
    if folder is not None:
        path = folder / f"{name}.toml"
        if not path.is_file():
            raise TemplateError(f"no template {name!r} in {folder}")
        return parse_template(path.read_bytes(), str(path))
    entry = resources.files(__package__).joinpath("templates", f"{name}.toml")
    if not entry.is_file():
        raise TemplateError(f"no built-in template {name!r}")
    return parse_template(entry.read_bytes(), f"built-in {name}")

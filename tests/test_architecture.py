"""The shape of the code, checked: import contracts (import-linter, configured in pyproject.toml) and no
module using another's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.unit

# Folder -> package name (setup.py maps the fixed top-level folders to deskpilot.*).
TOPS = {
    "server": "deskpilot.server",
    "inference": "deskpilot.inference",
    "indexes": "deskpilot.indexes",
    "installer": "deskpilot.installer",
    "addin_manifest": "deskpilot.addin_manifest",
}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for folder, package in TOPS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            if "static" in path.parts:
                continue
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join((package, *parts)), path))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_import_contracts_are_kept() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_module_imports_another_modules_private_names() -> None:
    """`_name` is private to its module; `_module` is private to its package (its siblings may use it)."""
    problems = []
    modules = {module for module, _ in _modules()}
    for module, path in _modules():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                not isinstance(node, ast.ImportFrom)
                or not node.module
                or not node.module.startswith("deskpilot.")
            ):
                continue
            source = node.module
            hidden = [p for p in source.split(".") if _private(p)]
            if hidden:
                owner = source[: source.index("." + hidden[0])]
                if not (package == owner or package.startswith(owner + ".")):
                    problems.append(f"{module}: imports the private module {source}")
            for alias in node.names:
                if not _private(alias.name) or source == module:
                    continue
                if f"{source}.{alias.name}" in modules and (
                    package == source or package.startswith(source + ".")
                ):
                    continue  # a private module of the importer's own package
                problems.append(f"{module}: imports the private name {alias.name} from {source}")
    assert not problems, "\n".join(problems)

"""The checks that pyproject.toml configures, run by the test command: a rule that nothing runs is a wish.

Each test runs one tool from the virtualenv that runs pytest, in the repository root, with the project's
own configuration, and fails with the tool's findings:
- ruff: lint (`[tool.ruff.lint]`, complexity included) and format;
- mypy: strict types over the five packages (`[tool.mypy]`);
- and every `type: ignore` or `noqa` in those packages says why (mypy makes an ignore name its code).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.unit

# The tools installed beside the interpreter that runs the tests (`.venv/bin`).
BIN = Path(sys.executable).parent
# The packages the checks cover (setup.py installs these folders as deskpilot.*).
PACKAGES = ("server", "inference", "indexes", "installer", "addin_manifest")


def _run(tool: str, *args: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def _findings(done: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(Path(done.args[0]).name if i == 0 else a for i, a in enumerate(done.args))
    return f"`{command}` exited {done.returncode}:\n{done.stdout[-12_000:]}{done.stderr[-4_000:]}"


def test_ruff_lint_finds_nothing() -> None:
    done = _run("ruff", "check", "--output-format", "concise", ".")
    assert done.returncode == 0, _findings(done)


def test_ruff_format_leaves_every_file_as_it_is() -> None:
    done = _run("ruff", "format", "--check", ".")
    assert done.returncode == 0, _findings(done)


def link_tree() -> Path:
    """build/typecheck/deskpilot/<folder> -> <folder>, the names the folders install under (setup.py), for
    mypy (`mypy_path` in pyproject.toml). `deskpilot` is a regular package there, not a namespace one as
    installed: mypy ranks a module below a data folder of the same name inside a namespace package
    (inference/templates.py and inference/templates/)."""
    root = REPO / "build" / "typecheck" / "deskpilot"
    root.mkdir(parents=True, exist_ok=True)
    (root / "__init__.py").touch()
    for package in PACKAGES:
        link = root / package
        if not link.is_symlink():
            link.symlink_to(REPO / package, target_is_directory=True)
    return root


def test_mypy_strict_finds_nothing() -> None:
    link_tree()
    done = _run("mypy")
    assert done.returncode == 0, _findings(done)


# A suppression and then, on its line or the line above, a comment that gives the reason.
_SUPPRESSION = re.compile(
    r"#\s*(type:\s*ignore\[[^\]]*\]|noqa(?::\s*[A-Z]+\d+(?:,\s*[A-Z]+\d+)*)?)(?P<rest>.*)"
)


def test_every_suppression_says_why() -> None:
    unexplained = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                found = _SUPPRESSION.search(line)
                if found is None:
                    continue
                said_here = re.sub(r"^[\s#:-]*", "", found["rest"]).strip()
                said_above = number > 1 and lines[number - 2].lstrip().startswith("#")
                if not said_here and not said_above:
                    unexplained.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not unexplained, "a suppression without a reason (say why, after it or on the line above):\n" + (
        "\n".join(unexplained)
    )


# The import contracts and the private-name rule are in test_architecture.py; the task pane's type check
# (`npm run typecheck`, against types generated from the server's OpenAPI document) in test_taskpane.py.

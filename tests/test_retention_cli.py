"""`deskpilot audit purge | erase | hold` through the real command group, on real files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_lineage import make_end, make_start

from deskpilot.indexes import DocumentIndex, index_folder
from deskpilot.indexes._types import DocumentInput
from deskpilot.indexes.embedding import HashEmbedder
from deskpilot.server.cli import main
from deskpilot.server.lineage import LineageStore

pytestmark = pytest.mark.integration

ANN = "ann.lee@contoso.com"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DESKPILOT_HOME", str(tmp_path))
    monkeypatch.setenv("DESKPILOT_RETENTION_INPUTS_DAYS", "0")  # every input is past its period at once
    with LineageStore(tmp_path / "deskpilot.db") as lineage:
        for text in (f"Mail from {ANN}", "Mail from bo@fabrikam.com"):
            lineage.close_run(lineage.open_run(make_start(input={"text": text})), make_end())
    with DocumentIndex(index_folder(tmp_path), embedder=HashEmbedder()) as index:
        index.add_documents([DocumentInput(source="graph:message:1", text=f"Note from {ANN}")])
    return tmp_path


def deskpilot(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj={"embedder": HashEmbedder()})


def test_erase_reports_what_went_and_verify_passes(home: Path) -> None:
    dry = deskpilot("audit", "erase", "--subject", ANN, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would erase subject sha256:" in dry.output and "runs: 1" in dry.output

    done = deskpilot("audit", "erase", "--subject", ANN, "--actor", "dpo@contoso.com")
    assert done.exit_code == 0, done.output
    assert (
        "runs: 1" in done.output
        and "documents: 1" in done.output
        and "recorded as event sha256:" in done.output
    )
    verify = deskpilot("audit", "verify")
    assert verify.exit_code == 0 and verify.output.startswith("OK: 2 runs checked"), verify.output
    with LineageStore(home / "deskpilot.db") as lineage:
        [event] = lineage.events(kinds=["audit.erase"])
    assert event["actor"] == "dpo@contoso.com"


def test_a_hold_blocks_purge_and_erase_with_an_error_line(home: Path) -> None:
    assert deskpilot("audit", "hold", "show").output == "no legal hold\n"
    held = deskpilot("audit", "hold", "set", "--reason", "Matter 14")
    assert held.exit_code == 0 and "legal hold in place since" in held.output
    for args in (("audit", "purge"), ("audit", "erase", "--subject", ANN)):
        refused = deskpilot(*args)
        assert refused.exit_code == 1
        assert (
            "Error:" in refused.output
            and "legal hold is in place" in refused.output
            and "Matter 14" in refused.output
        )
    assert deskpilot("audit", "hold", "release", "--reason", "closed").output == "legal hold released\n"
    purged = deskpilot("audit", "purge")
    assert purged.exit_code == 0 and "runs inputs: 2" in purged.output, purged.output
    assert deskpilot("audit", "verify").exit_code == 0


def test_bad_input_is_an_error_line(home: Path, tmp_path: Path) -> None:
    bad = deskpilot("audit", "erase", "--subject", "not-an-address")
    assert bad.exit_code == 1 and "Error: not an email address: 'not-an-address'" in bad.output
    empty_reason = deskpilot("audit", "hold", "set", "--reason", " ")
    assert empty_reason.exit_code == 1 and "needs a reason" in empty_reason.output

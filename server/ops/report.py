"""The auditor's report: the dashboard's views in one self-contained HTML file (`deskpilot audit report`).

It is the built dashboard page (`npm run build` writes server/static/dashboard/) with its script inlined
and the data embedded as JSON in `<script type="application/json" id="report-data">`, which the page reads
instead of fetching: the file opens from disk in any browser, with no server, no network and no request at
all, and shows exactly what the live dashboard shows for the same period.

Embedding is escaped so that no value in the data can end the script element: in the JSON, `<`, `>` and
`&` are written as `\\u003c`, `\\u003e` and `\\u0026` (still the same JSON); in the inlined code, `</script`
is written `<\\/script` (the same string or regular expression to JavaScript).
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from deskpilot.server.ops.dashboard import Dashboard

__all__ = ["DASHBOARD_DIR", "REPORT_DATA_ID", "ReportError", "embed_json", "render_report"]

# The built dashboard (taskpane/dashboard.html and src/dashboard/), shipped as package data.
DASHBOARD_DIR = Path(__file__).parents[1] / "static" / "dashboard"
# The element the page reads its data from (taskpane/src/dashboard/data.ts REPORT_DATA_ID).
REPORT_DATA_ID = "report-data"

_SCRIPT = re.compile(r'<script type="module" crossorigin src="\./([^"]+)"></script>')
_STYLESHEET = re.compile(r'<link rel="stylesheet" crossorigin href="\./([^"]+)">')
_LOCAL_REFERENCE = re.compile(r'(?:src|href)="\./')
_END_SCRIPT = re.compile(r"</(script)", re.IGNORECASE)


class ReportError(Exception):
    """The report cannot be written: the dashboard is not built, or its build is not one we can inline."""


def embed_json(data: Dashboard) -> str:
    """The data as JSON text that is safe inside a script element (and parses to the same document)."""
    text = msgspec.json.encode(data).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_report(data: Dashboard, build_dir: Path = DASHBOARD_DIR) -> str:
    """The built dashboard page with its code inlined and `data` embedded: one file, no references out."""
    index = build_dir / "index.html"
    if not index.is_file():
        raise ReportError(f"the dashboard is not built (no {index}): run `make setup`")
    page = index.read_text(encoding="utf-8")

    def asset(match: re.Match[str]) -> str:
        path = (build_dir / match.group(1)).resolve()
        if not path.is_relative_to(build_dir.resolve()) or not path.is_file():
            raise ReportError(
                f"the dashboard's {match.group(1)} is missing from {build_dir}: run `make setup`"
            )
        return _END_SCRIPT.sub(r"<\\/\1", path.read_text(encoding="utf-8"))

    # Every file the page refers to must be one we inline (one module script, any stylesheets): a
    # reference left over would be a request from the auditor's copy, which has nothing beside it.
    scripts, sheets = len(_SCRIPT.findall(page)), len(_STYLESHEET.findall(page))
    if scripts != 1 or len(_LOCAL_REFERENCE.findall(page)) != scripts + sheets:
        raise ReportError(
            f"{index} is not a build the report can inline (one module script and stylesheets only): "
            "rebuild it with `make setup`"
        )
    page = _STYLESHEET.sub(lambda m: f"<style>{asset(m)}</style>", page)
    data_element = f'<script type="application/json" id="{REPORT_DATA_ID}">{embed_json(data)}</script>'
    return _SCRIPT.sub(lambda m: f'{data_element}\n<script type="module">{asset(m)}</script>', page)

"""The Office add-in manifests: how Outlook and Word find the Deskpilot task pane.

Both manifests come from one template (`templates/manifest.xml`) filled in with the server's base URL, a
stable per-host add-in id and the user's access token (in the pane's start URL, `taskpane_url`);
`validate` checks a manifest offline against Microsoft's schemas, which ship in `xsd/`. The icons the
manifests point at (`/taskpane/assets/icon-<size>.png`) are in `assets/`, for the server to serve
(`ASSETS_DIR`).

    from deskpilot.addin_manifest import render, validate, write_manifests
    xml = render("outlook", "https://localhost:8765", token)
    assert validate(xml) == []
"""

from deskpilot.addin_manifest._icons import ASSETS_DIR, ICON_SIZES
from deskpilot.addin_manifest._render import (
    HOSTS,
    Host,
    addin_id,
    manifest_filename,
    render,
    taskpane_url,
    write_manifests,
)
from deskpilot.addin_manifest._validate import SCHEMA_DIR, validate

__all__ = [
    "ASSETS_DIR",
    "HOSTS",
    "ICON_SIZES",
    "SCHEMA_DIR",
    "Host",
    "addin_id",
    "manifest_filename",
    "render",
    "taskpane_url",
    "validate",
    "write_manifests",
]

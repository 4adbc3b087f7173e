"""Print the server's OpenAPI document as JSON: the one it serves at /openapi (`openapi_document`).

The document is built in-process (no server, no model) so that the task pane builds offline. It documents
every error as the API's `ErrorBody`, each stream as `text/event-stream` with the schemas of its events,
and maps every event name to the schema of its payload in `x-sse-events` (deskpilot.server.web.openapi).
The task pane's TypeScript types are generated from this output (scripts/gen-api.mjs): nothing is written
twice.
"""

from __future__ import annotations

import json
import sys
import tempfile

from deskpilot.server.app import create_app
from deskpilot.server.settings import load_settings
from deskpilot.server.web.openapi import openapi_document


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        # The backend factory is never called: the model loads on start-up, which we never run.
        app = create_app(load_settings(home=home, https=False), backend=lambda: None)  # type: ignore[arg-type,return-value]
        document = openapi_document(app)
    json.dump(document, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Print the server's OpenAPI document, plus the wire types that travel inside SSE streams, as JSON.

The document is `create_app(...).openapi_schema`, the same object the server serves at
/openapi/openapi.json; it is built in-process (no server, no model) so that the task pane builds offline.
OpenAPI cannot describe the events inside a `text/event-stream` body, so the Structs of those events
(`deskpilot.server.web.sse.EVENT_NAMES`) and the error body are added to `components.schemas` from the same
msgspec Structs the server encodes, and `x-sse-events` maps each event name to its schema. The task pane's
TypeScript types are generated from this output (scripts/gen-api.mjs): nothing is written twice.
"""

from __future__ import annotations

import json
import sys
import tempfile

import msgspec

from deskpilot.server.app import create_app
from deskpilot.server.core import wire as schemas
from deskpilot.server.settings import load_settings
from deskpilot.server.web import sse


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        # The backend factory is never called: the model loads on start-up, which we never run.
        app = create_app(load_settings(home=home, https=False), backend=lambda: None)  # type: ignore[arg-type,return-value]
        document = app.openapi_schema.to_schema()
    wire = [*sse.EVENT_NAMES, schemas.ErrorBody]
    _, components = msgspec.json.schema_components(wire, ref_template="#/components/schemas/{name}")
    document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():
        document["components"]["schemas"].setdefault(name, schema)
    document["x-sse-events"] = {event: kind.__name__ for kind, event in sse.EVENT_NAMES.items()}
    json.dump(document, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

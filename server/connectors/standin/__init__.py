"""A Microsoft Graph stand-in on 127.0.0.1, for tests and for trying Deskpilot without a tenant.

    from deskpilot.server.connectors.standin import Faults, StandIn, generate

    with StandIn(generate(messages=300, files=40), faults=Faults(rate=0.2)) as graph:
        settings = load_settings(
            graph_base_url=graph.graph_url,
            graph_client_id="any",
            graph_authority_host=graph.authority_host,
            graph_authority_loopback=graph.url,
        )

It serves a generated mailbox (folders, threads), a OneDrive (txt, md, html, docx, pdf and files the index
cannot read), SharePoint sites with document libraries (`Tenant.add_site`; followed ones are listed by
`/me/followedSites`) and a calendar through the Graph v1.0 endpoints the connector uses, with paging
(`@odata.nextLink`) and delta (`@odata.deltaLink`, `@removed`, `deleted`, 410 for expired links); an
authority that msal accepts (OIDC discovery, device code, token and refresh grants); faults by
configuration (`Faults`); and a mutation API: the `Tenant` methods in-process, `/_standin/...` over HTTP.
The Graph writes Deskpilot's actions make (reply drafts, events, To Do tasks, OneDrive uploads, deletes)
are served too, with Graph's idempotency semantics; `Tenant.effects()` (or `/_standin/effects`) lists
what they created, with the markers the client put on it.
By hand: `python -m deskpilot.server.connectors.standin --port 8910 --fault-rate 0.2`.
"""

from deskpilot.server.connectors.standin._data import (
    DriveFile,
    Event,
    Folder,
    Library,
    Message,
    Site,
    Tenant,
    TodoList,
    TodoTask,
    file_content,
    generate,
)
from deskpilot.server.connectors.standin._server import FAULT_KINDS, Faults, QuietHTTPServer, StandIn

__all__ = [
    "FAULT_KINDS",
    "DriveFile",
    "Event",
    "Faults",
    "Folder",
    "Library",
    "Message",
    "QuietHTTPServer",
    "Site",
    "StandIn",
    "Tenant",
    "TodoList",
    "TodoTask",
    "file_content",
    "generate",
]

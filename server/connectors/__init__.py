"""Microsoft 365 connectors: sign-in (msal), Graph calls (O365), tokens in the OS keyring (keyring), and an
incremental, crash-safe sync of mail, OneDrive files and calendar events into the document index.

    connector = GraphConnector(settings, index)   # the server's: one background sync, status, threads
    connector.start(); connector.status()
    connector.conversation(conversation_id)       # -> [EmailIn], oldest first

Modules: `tokens` (keyring storage, O365 token backend), `auth` (msal public client, loopback routing
for the stand-in), `graph` (O365 Account + retry policy + validation), `models` (msgspec payloads),
`state` (SQLite delta links and quarantine), `sync` (the delta sync), `service` and `api` (the
server's side), `cli` (login, logout, whoami, sync), `standin` (a Graph stand-in for tests and demos).
"""

import importlib
from typing import Any

# Names resolve on first use: `deskpilot --help` and the CLI's other commands need not import msal and O365.
_EXPORTS = {
    "SCOPES": "auth",
    "AuthError": "auth",
    "GraphAuth": "auth",
    "NotConfigured": "auth",
    "NotSignedIn": "auth",
    "SignedIn": "auth",
    "GraphClient": "graph",
    "GraphError": "graph",
    "GraphUnavailable": "graph",
    "ConversationOut": "service",
    "GraphConnector": "service",
    "SyncStatus": "service",
    "GraphSync": "sync",
    "SyncBusy": "sync",
    "SyncProgress": "sync",
    "SyncSummary": "sync",
    "InsecureKeyringError": "tokens",
    "KeyringTokenBackend": "tokens",
    "TokenVault": "tokens",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)

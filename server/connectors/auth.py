"""Sign-in to Microsoft 365 with msal as a public client: device code flow, or a browser where there is one.

The msal application shares its token cache with O365 (`KeyringTokenBackend`), so the tokens msal gets
at sign-in and refreshes later are the ones O365 puts on Graph requests, and the only copy at rest is
the keyring entry. Nothing here logs a token; O365's debug log prints request headers (the bearer
token), so its logger is kept at WARNING.

msal accepts only https authorities. For the Graph stand-in (and nothing else) `LoopbackHttpClient`
sends the requests meant for the configured https authority host to a loopback URL: msal's public
`http_client` hook, no patching. With a loopback route configured it refuses every other host, so a
test can never reach the internet through msal.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msal
import msgspec
import requests

from deskpilot.server.connectors.tokens import (
    InsecureKeyringError,
    KeyringTokenBackend,
    TokenVault,
    keyring_description,
)
from deskpilot.server.settings import Settings

__all__ = [
    "SCOPES",
    "SIGN_IN_SCOPES",
    "SITES_SCOPES",
    "AuthError",
    "ConsentRequired",
    "GraphAuth",
    "LoopbackHttpClient",
    "NotConfigured",
    "NotSignedIn",
    "SignedIn",
]

log = logging.getLogger("deskpilot.connectors")
# O365 logs request headers, bearer token included, at DEBUG, and expected 404/410 answers as errors;
# the connector logs every failure itself, with context and without secrets.
logging.getLogger("O365").setLevel(logging.CRITICAL)

# Read-only, delegated: the mailbox, the user's files and calendar, and who the user is. msal adds
# openid, profile and offline_access (the refresh token) itself.
# Read for the sync; write for follow-up actions (reply drafts, events, To Do tasks, filed documents).
# Delegated scopes only: Deskpilot acts as the signed-in user, never as the app.
SCOPES = [
    "User.Read",
    "Mail.ReadWrite",
    "Files.ReadWrite.All",
    "Calendars.ReadWrite",
    "Tasks.ReadWrite",
]
# SharePoint sites (`/me/followedSites`, `/sites/{id}/drives`) need Sites.Read.All. It is asked for apart
# from SCOPES (incremental consent): a user who signed in before it was asked for has no consent for it,
# and a refresh that asked for it with the rest would fail, taking mail, files and calendar down too. So
# sync refreshes SCOPES as before and asks for a Sites.Read.All token on its own (`access_token(scopes=)`),
# and only the SharePoint part goes without when that is refused. New sign-ins ask for both, so a new
# user consents once.
SITES_SCOPES = ["Sites.Read.All"]
SIGN_IN_SCOPES = SCOPES + SITES_SCOPES
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class AuthError(RuntimeError):
    """Sign-in failed; the message says why and what to do."""


class NotConfigured(AuthError):
    pass


class NotSignedIn(AuthError):
    pass


class ConsentRequired(AuthError):
    """The sign-in holds no consent for a permission asked for apart from SCOPES (it predates it, or the
    user could not consent): only what needs that permission goes without."""


class SignedIn(msgspec.Struct, rename="camel", kw_only=True):
    username: str
    name: str = ""
    tenant_id: str = ""
    authority: str = ""
    token_expires: datetime | None = None  # of the cached access token; msal refreshes it as needed
    keyring: str = ""


class LoopbackHttpClient:
    """msal's `http_client`: a requests session that sends `https://<host>/...` to `http://127.0.0.1:N/...`.

    Only the one routed host is reachable through it, so a misconfigured test fails instead of calling
    a real authority."""

    def __init__(self, routes: dict[str, str], timeout: float = 30.0) -> None:
        for target in routes.values():
            if urlsplit(target).hostname not in _LOOPBACK_HOSTS:
                raise ValueError(f"loopback route {target!r} is not on the loopback interface")
        self.routes = {host.lower(): target.rstrip("/") for host, target in routes.items()}
        self.timeout = timeout
        self.session = requests.Session()

    def _route(self, url: str) -> str:
        parts = urlsplit(url)
        target = self.routes.get((parts.hostname or "").lower())
        if target is None:
            raise requests.ConnectionError(
                f"refusing {parts.scheme}://{parts.hostname}: only "
                f"{', '.join(self.routes)} are routed (to the loopback interface)"
            )
        base = urlsplit(target)
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, parts.fragment))

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.get(self._route(url), params=params, headers=headers, **kwargs)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.post(self._route(url), params=params, data=data, headers=headers, **kwargs)

    def close(self) -> None:
        self.session.close()


def _vault_account(settings: Settings) -> str:
    host = urlsplit(settings.graph_authority_host).netloc
    return f"{settings.graph_client_id}@{host}/{settings.graph_tenant}"


class GraphAuth:
    """msal public client application over the keyring-backed token cache."""

    def __init__(self, settings: Settings, *, vault: TokenVault | None = None) -> None:
        if not settings.graph_client_id:
            raise NotConfigured(
                "Microsoft 365 is not configured: set graph_client_id (the application id of your "
                "organisation's app registration for Deskpilot) in config.toml or DESKPILOT_GRAPH_CLIENT_ID, "
                "and graph_tenant to your tenant id or domain"
            )
        self.settings = settings
        self.authority = f"{settings.graph_authority_host.rstrip('/')}/{settings.graph_tenant}"
        self.vault = vault or TokenVault(
            _vault_account(settings), allow_insecure=settings.allow_insecure_token_storage
        )
        self.backend = KeyringTokenBackend(self.vault)
        self.backend.load_token()
        self.backend.refresher = self.access_token
        self._app: msal.PublicClientApplication | None = None

    @property
    def app(self) -> msal.PublicClientApplication:
        """Created on first use: creating it fetches the authority's OpenID configuration."""
        if self._app is None:
            settings = self.settings
            http_client = None
            if settings.graph_authority_loopback:
                host = urlsplit(settings.graph_authority_host).hostname or ""
                http_client = LoopbackHttpClient(
                    {host: settings.graph_authority_loopback}, timeout=settings.graph_timeout_seconds
                )
            known = urlsplit(self.authority).hostname in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS
            try:
                self._app = msal.PublicClientApplication(
                    settings.graph_client_id,
                    authority=self.authority,
                    token_cache=self.backend,
                    http_client=http_client,
                    instance_discovery=None if known else False,
                    timeout=settings.graph_timeout_seconds,
                )
            except (ValueError, requests.RequestException) as exc:
                raise AuthError(f"cannot reach the sign-in service at {self.authority}: {exc}") from exc
        return self._app

    # -- sign-in ---------------------------------------------------------------------------------------

    def login_device_code(self, show: Callable[[str], None]) -> SignedIn:
        """Print the code and URL with `show`, wait for the user to finish in any browser, keep the tokens."""
        self.vault.check_writable()  # before the user goes through sign-in, not after
        flow = self.app.initiate_device_flow(scopes=SIGN_IN_SCOPES)
        if "user_code" not in flow:
            raise AuthError(
                f"the sign-in service refused the device code flow: "
                f"{flow.get('error_description') or flow.get('error') or flow}"
            )
        show(flow["message"])
        return self._finish(self.app.acquire_token_by_device_flow(flow))

    def login_interactive(self) -> SignedIn:
        """Sign in in the system browser (msal runs a one-shot redirect listener on localhost)."""
        self.vault.check_writable()
        return self._finish(self.app.acquire_token_interactive(SIGN_IN_SCOPES, prompt="select_account"))

    def _finish(self, result: dict[str, Any]) -> SignedIn:
        if "access_token" not in result:
            raise AuthError(
                f"sign-in failed: {result.get('error_description') or result.get('error') or 'unknown'}"
            )
        self.backend.save_token(force=True)
        who = self.whoami()
        assert who is not None
        log.info("signed in to Microsoft 365 as %s", who.username)
        return who

    def logout(self) -> bool:
        """Forget the sign-in: every keyring entry of this app registration goes. True if there was one."""
        return self.backend.delete_token()

    def whoami(self) -> SignedIn | None:
        """Who is signed in, from the keyring (no network)."""
        accounts = self.backend.get_all_accounts()
        if not accounts:
            return None
        account = accounts[0]
        id_token = self.backend.get_id_token(username=account.get("username")) or {}
        claims: dict[str, Any] = {}
        if id_token.get("secret"):  # msal checked it at sign-in; here only the display name is read
            try:
                payload = id_token["secret"].split(".")[1]
                claims = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            except (IndexError, ValueError, msgspec.DecodeError):
                claims = {}
        access = self.backend.get_access_token(username=account.get("username")) or {}
        expires = access.get("expires_on")
        return SignedIn(
            username=account.get("username", ""),
            name=str(claims.get("name", "")),
            tenant_id=str(claims.get("tid") or account.get("realm", "")),
            authority=self.authority,
            token_expires=datetime.fromtimestamp(int(expires), UTC) if expires else None,
            keyring=keyring_description(self.vault.ring)[0],
        )

    def access_token(self, *, force_refresh: bool = False, scopes: Sequence[str] = SCOPES) -> str:
        """A valid access token for `scopes`: the cached one, or a refreshed one (kept in the keyring).
        `force_refresh` when Graph refused the cached one before it expired (revoked, password changed).
        For scopes other than SCOPES (SITES_SCOPES) a refusal raises `ConsentRequired`, not `NotSignedIn`:
        the sign-in is fine, it just lacks that permission."""
        accounts = self.app.get_accounts()
        if not accounts:
            raise NotSignedIn("not signed in to Microsoft 365: run `deskpilot login`")
        result = self.app.acquire_token_silent_with_error(
            list(scopes), account=accounts[0], force_refresh=force_refresh
        )
        if not result or "access_token" not in result:
            reason = (result or {}).get("error_description") or "the sign-in has expired"
            if list(scopes) != SCOPES:
                log.info("no token for %s: %s", " ".join(scopes), reason.splitlines()[0])
                raise ConsentRequired(
                    f"needs the {', '.join(scopes)} permission: sign in again (`deskpilot login`) "
                    "or ask IT to grant admin consent"
                )
            raise NotSignedIn(f"{reason.splitlines()[0]}: run `deskpilot login` again")
        try:
            self.backend.save_token()
        except InsecureKeyringError as exc:  # refreshed in memory; say why it will not survive a restart
            log.warning("%s", exc)
        return str(result["access_token"])

"""Where webhook actions may go: the receivers in `Settings.webhook_allow`, checked when an action is
proposed and again when it runs, after DNS resolution, on every address.

A URL passes when all of these hold:

- its scheme is https; http only to a loopback receiver that an allow-list entry names by its address
  ("http://127.0.0.1:9000/hooks/");
- it carries no credentials (`user:pass@`), and its host is a name or an IP literal in its standard form
  (not 2130706433, 0x7f.1, 0177.0.0.1 or 127.1, which resolvers read as addresses);
- its path, percent-decoded (repeatedly), has no "." or ".." segment, no backslash and no encoded "/";
- an entry has the same scheme, host and port, and a path prefix the URL's path starts with on a segment
  boundary ("/services/" admits "/services/x", not "/services-x" nor "/services/../admin");
- every address the host resolves to is public, or is the very address the matching entry names
  (private, loopback, link-local, multicast, reserved and the cloud metadata addresses count as not
  public; an IPv4-mapped IPv6 address is judged as the IPv4 address it carries);
- it is not the server's own API (a loopback or unspecified address on the server's port), whatever
  the allow-list says.

At execution, the connection goes to an address this check passed: `pinned_client` makes an httpx
client whose sockets are opened by `_CheckedBackend.connect_tcp`, which resolves the host, checks every
address and connects to a checked one, so a DNS answer that changes between the check and the connection
(rebinding) cannot send a delivery elsewhere. The URL keeps its host name, so TLS verifies the
certificate for that name. Proxies from the environment are not used, and redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import httpcore
import httpx

from deskpilot.server.settings import Settings

__all__ = ["DestinationRefused", "Destinations", "HostNotFound", "Resolver", "pinned_client"]

log = logging.getLogger("deskpilot.actions")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to, as text ("93.184.216.34", "2606:2800::1").
Resolver = Callable[[str, int], list[str]]

_DEFAULT_PORTS = {"https": 443, "http": 80}
_MAX_URL = 2_048
# Not public, and not covered by ipaddress's own flags in every Python version: the cloud metadata
# addresses, NAT64, 6to4 and Teredo (which carry an IPv4 address inside), shared address space (CGNAT).
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.254/32",
        "fd00:ec2::254/128",
        "100.64.0.0/10",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "2002::/16",
        "2001::/32",
    )
)
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_NAME_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


class DestinationRefused(ValueError):
    """Not a place webhooks may go; the message says why."""


class HostNotFound(OSError):
    """The host name does not resolve (now): refused at proposal, retried at execution."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotFound(f"{host} does not resolve: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str  # lower case; an IP literal in its standard form, without brackets
    address: IPAddress | None  # the host, when it is an IP literal
    port: int
    segments: tuple[str, ...]  # the path's segments, percent-decoded once


@dataclass(frozen=True)
class _Entry:
    text: str
    url: _Url


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def public(address: IPAddress) -> bool:
    """Whether an address is on the public internet (and so needs no naming in the allow-list)."""
    address = _unmapped(address)
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        return False
    return not any(address in net for net in _NOT_PUBLIC if net.version == address.version)


def _host(text: str) -> tuple[str, IPAddress | None]:
    if "%" in text:
        raise DestinationRefused("a host with a zone index or a percent sign is not allowed")
    address = _ip(text)
    if address is not None:
        return str(address), address
    name = text[:-1] if text.endswith(".") else text
    labels = name.split(".")
    if all(_NUMERIC_LABEL.fullmatch(label) for label in labels) or _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise DestinationRefused(
            f"host {text!r}: an IP address must be written in its standard form (e.g. 192.0.2.10)"
        )
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise DestinationRefused(f"host {text!r} is not a valid host name") from exc
    if len(name) > 253 or not all(_NAME_LABEL.fullmatch(label) for label in name.split(".")):
        raise DestinationRefused(f"host {text!r} is not a valid host name")
    return name, None


def _segments(path: str) -> tuple[str, ...]:
    """The path's segments, decoded once; refused when any decoding of it could climb or hide a "/"."""
    if "\\" in path:
        raise DestinationRefused("a webhook path may not contain a backslash")
    decoded = path
    for _ in range(4):  # "%252e%252e" is ".." to a receiver that decodes twice
        lowered = decoded.lower()
        if "%2f" in lowered or "%5c" in lowered:
            raise DestinationRefused("a webhook path may not contain an encoded '/' or '\\'")
        if any(s in (".", "..") for s in decoded.split("/")) or "\\" in decoded:
            raise DestinationRefused("a webhook path may not contain '.' or '..' segments")
        again = unquote(decoded)
        if again == decoded:
            break
        decoded = again
    else:
        raise DestinationRefused("a webhook path may not be percent-encoded this many times over")
    return tuple(unquote(path or "/").split("/")[1:])


def _parse(url: str, *, what: str = "a webhook URL") -> tuple[_Url, SplitResult]:
    if not isinstance(url, str) or not url:
        raise DestinationRefused(f"{what} is required")
    if len(url) > _MAX_URL:
        raise DestinationRefused(f"{what} may be at most {_MAX_URL} characters")
    if any(c <= " " or c == "\x7f" for c in url):
        raise DestinationRefused(f"{what} may not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(f"{what} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise DestinationRefused(
            f"{what} must be https (http only to a loopback receiver named in webhook_allow), "
            f"not {scheme or 'a relative URL'}"
        )
    if "@" in parts.netloc:
        raise DestinationRefused(f"{what} may not carry credentials (user:password@); use a webhook secret")
    if not parts.hostname:
        raise DestinationRefused(f"{what} has no host")
    host, address = _host(parts.hostname)
    return _Url(scheme, host, address, port or _DEFAULT_PORTS[scheme], _segments(parts.path)), parts


def _entry(text: str) -> _Entry:
    url, parts = _parse(text, what=f"webhook_allow entry {text!r}")
    if parts.query or parts.fragment:
        raise DestinationRefused(f"webhook_allow entry {text!r}: no query or fragment")
    if url.scheme == "http" and not (url.address is not None and _unmapped(url.address).is_loopback):
        raise DestinationRefused(
            f"webhook_allow entry {text!r}: http only to a loopback address (127.0.0.1, [::1]); use https"
        )
    prefix = url.segments[:-1] if url.segments and url.segments[-1] == "" else url.segments
    return _Entry(text, _Url(url.scheme, url.host, url.address, url.port, prefix))


class Destinations:
    """The allow-list, and the server's own address that nothing may reach."""

    def __init__(
        self,
        allow: Iterable[str],
        *,
        own_port: int | None = None,
        own_host: str | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.entries: list[_Entry] = []
        self.problems: list[str] = []
        for text in allow:
            try:
                self.entries.append(_entry(text))
            except DestinationRefused as exc:
                self.problems.append(str(exc))
                log.warning("ignored: %s", exc)
        self.own_port = own_port
        own = _ip(own_host.strip("[]")) if own_host else None
        self.own_address = _unmapped(own) if own is not None else None
        self.resolve = resolve

    @classmethod
    def from_settings(cls, settings: Settings, *, resolve: Resolver = system_resolver) -> Destinations:
        return cls(settings.webhook_allow, own_port=settings.port, own_host=settings.host, resolve=resolve)

    def check_url(self, url: str) -> _Url:
        """Everything but DNS: the URL's form, and the allow-list entry it falls under."""
        parsed, _ = _parse(url)
        if parsed.address is not None:
            self._not_own(parsed.address, parsed.port)
        same_place = [
            e
            for e in self.entries
            if (e.url.scheme, e.url.host, e.url.port) == (parsed.scheme, parsed.host, parsed.port)
        ]
        for entry in same_place:
            if parsed.segments[: len(entry.url.segments)] == entry.url.segments:
                return parsed
        if parsed.scheme == "http" and not (
            parsed.address is not None and _unmapped(parsed.address).is_loopback
        ):
            raise DestinationRefused(
                "a webhook URL must be https (http only to a loopback receiver named in webhook_allow)"
            )
        where = f"{parsed.scheme}://{_netloc(parsed.host, parsed.port)}"
        if same_place:
            prefixes = ", ".join("/" + "/".join(e.url.segments) for e in same_place)
            raise DestinationRefused(f"the path is outside what webhook_allow allows at {where} ({prefixes})")
        listed = ", ".join(e.text for e in self.entries) or "nothing"
        raise DestinationRefused(f"{where} is not an allowed webhook receiver (webhook_allow: {listed})")

    def check(self, url: str) -> list[str]:
        """The full check, as at proposal: returns the addresses the host resolves to, every one allowed."""
        parsed = self.check_url(url)
        return self.addresses(parsed.host, parsed.port)

    def addresses(self, host: str, port: int) -> list[str]:
        """Resolve `host` and check every address it has for a connection on `port`; the checked ones."""
        host = host.strip("[]").lower()
        literal = _ip(host)
        found = [str(literal)] if literal is not None else self.resolve(host, port)
        if not found:
            raise HostNotFound(f"{host} has no address")
        for text in found:
            address = _ip(text.split("%", 1)[0])
            if address is None:
                raise DestinationRefused(f"{host} resolved to {text!r}, which is not an address")
            self._not_own(address, port)
            if public(address):
                continue
            if literal is not None and any(
                e.url.address == literal and e.url.port == port for e in self.entries
            ):
                continue  # the allow-list names this very address
            raise DestinationRefused(
                f"{host} resolves to {address}, a private, loopback, link-local or otherwise non-public "
                "address; webhook_allow must name such a receiver by its address"
            )
        return found

    def _not_own(self, address: IPAddress, port: int) -> None:
        if self.own_port is None or port != self.own_port:
            return
        address = _unmapped(address)
        if address.is_loopback or address.is_unspecified or address == self.own_address:
            raise DestinationRefused("a webhook may not call Deskpilot's own API")


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _CheckedBackend(httpcore.SyncBackend):
    """Opens every socket of the webhook client to an address `Destinations` has just checked."""

    def __init__(self, destinations: Destinations) -> None:
        self.destinations = destinations

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in self.destinations.addresses(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # the next address, as a resolver's caller would
                error = exc
        raise error or httpcore.ConnectError(f"no address of {host} answered")


def pinned_client(destinations: Destinations, *, timeout: float) -> httpx.Client:
    """An httpx client that connects only to checked addresses, never through a proxy, never redirected."""
    transport = httpx.HTTPTransport(trust_env=False)
    # httpx has no parameter for httpcore's network backend: the pool is rebuilt with ours, with the
    # TLS context httpx would have made (certifi, or SSL_CERT_FILE / SSL_CERT_DIR).
    transport._pool.close()
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=True),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=_CheckedBackend(destinations),
    )
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)

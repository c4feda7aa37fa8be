"""SSRF protection for destination URLs, without any I/O.

Two checks, because a name can resolve anywhere:

1. :func:`check_url` when a destination is saved and before each attempt: scheme, userinfo,
   host syntax, and the host itself if it is an IP literal (including the legacy IPv4 spellings
   ``127.1``, ``0x7f000001``, ``017700000001`` that resolvers accept) or a local-looking name.
2. :func:`check_resolved` on what DNS returned, at connect time. The I/O layer resolves with
   ``loop.getaddrinfo``, passes every address here, then connects to a returned (checked) IP
   — never re-resolving the name — so a rebinding DNS server cannot swap in a private address
   between check and connect. One unsafe address refuses the whole set.

``allow_private`` opens loopback, private, link-local and other non-public ranges for local
development and tests. Cloud metadata endpoints stay refused even then: no webhook receiver
lives there, and they hold credentials.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_IPV4_PART = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")


class AddressClass(StrEnum):
    """Why an address (or name) is not a public destination."""

    METADATA = "metadata"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link_local"
    CARRIER_GRADE_NAT = "carrier_grade_nat"
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    RESERVED = "reserved"
    LOCAL_NAME = "local_name"


class UnsafeDestination(ValueError):
    """A destination the messenger refuses to call. ``reason`` is a short machine code.

    A ``ValueError`` subclass, so a pydantic validator turns it into a 422.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ParsedTarget:
    """A checked destination. ``url`` is normalized (IDNA host, canonical IP, no fragment)."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    ip: IPAddress | None

    @property
    def host_header(self) -> str:
        """The ``Host`` header (and TLS SNI host when ``ip`` is ``None``)."""
        host = f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# First match wins, so the specific entries come before the ranges holding them.
_IPV4_TABLE: tuple[tuple[ipaddress.IPv4Network, AddressClass, str], ...] = (
    (_V4("169.254.169.254/32"), AddressClass.METADATA, "cloud instance metadata"),
    (_V4("169.254.170.2/32"), AddressClass.METADATA, "ECS task metadata"),
    (_V4("100.100.100.200/32"), AddressClass.METADATA, "Alibaba Cloud metadata"),
    (_V4("192.0.0.192/32"), AddressClass.METADATA, "Oracle Cloud metadata"),
    (_V4("0.0.0.0/32"), AddressClass.UNSPECIFIED, "the unspecified address"),
    (_V4("0.0.0.0/8"), AddressClass.RESERVED, "'this network' (0.0.0.0/8)"),
    (_V4("10.0.0.0/8"), AddressClass.PRIVATE, "private (RFC 1918)"),
    (_V4("172.16.0.0/12"), AddressClass.PRIVATE, "private (RFC 1918)"),
    (_V4("192.168.0.0/16"), AddressClass.PRIVATE, "private (RFC 1918)"),
    (_V4("100.64.0.0/10"), AddressClass.CARRIER_GRADE_NAT, "carrier-grade NAT (RFC 6598)"),
    (_V4("127.0.0.0/8"), AddressClass.LOOPBACK, "loopback"),
    (_V4("169.254.0.0/16"), AddressClass.LINK_LOCAL, "link-local"),
    (_V4("192.0.0.0/24"), AddressClass.RESERVED, "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), AddressClass.RESERVED, "documentation (TEST-NET-1)"),
    (_V4("198.51.100.0/24"), AddressClass.RESERVED, "documentation (TEST-NET-2)"),
    (_V4("203.0.113.0/24"), AddressClass.RESERVED, "documentation (TEST-NET-3)"),
    (_V4("192.88.99.0/24"), AddressClass.RESERVED, "6to4 relay anycast"),
    (_V4("198.18.0.0/15"), AddressClass.RESERVED, "benchmarking"),
    (_V4("224.0.0.0/4"), AddressClass.MULTICAST, "multicast"),
    (_V4("240.0.0.0/4"), AddressClass.RESERVED, "reserved (240.0.0.0/4, broadcast)"),
)

_IPV6_TABLE: tuple[tuple[ipaddress.IPv6Network, AddressClass, str], ...] = (
    (_V6("fd00:ec2::254/128"), AddressClass.METADATA, "AWS instance metadata (IPv6)"),
    (_V6("::/128"), AddressClass.UNSPECIFIED, "the unspecified address"),
    (_V6("::1/128"), AddressClass.LOOPBACK, "loopback"),
    (_V6("64:ff9b:1::/48"), AddressClass.PRIVATE, "local-use NAT64"),
    (_V6("fc00::/7"), AddressClass.PRIVATE, "unique local (fc00::/7)"),
    (_V6("fe80::/10"), AddressClass.LINK_LOCAL, "link-local"),
    (_V6("fec0::/10"), AddressClass.PRIVATE, "site-local (deprecated)"),
    (_V6("ff00::/8"), AddressClass.MULTICAST, "multicast"),
    (_V6("2001:db8::/32"), AddressClass.RESERVED, "documentation"),
    (_V6("3fff::/20"), AddressClass.RESERVED, "documentation"),
    (_V6("2001::/23"), AddressClass.RESERVED, "IETF protocol assignments (incl. Teredo)"),
)
_IPV6_GLOBAL_UNICAST = _V6("2000::/3")
_NAT64 = _V6("64:ff9b::/96")

# Names that always resolve somewhere local; suffixes that only local resolvers answer.
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa", ".lan")
_METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data"}
)


def classify_address(ip: IPAddress) -> tuple[AddressClass, str] | None:
    """``(class, description)`` if ``ip`` is not a public unicast address, else ``None``.

    IPv6 forms that embed an IPv4 address (IPv4-mapped, NAT64 ``64:ff9b::/96``, 6to4) are
    judged by the embedded address.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        for net4, cls, what in _IPV4_TABLE:
            if ip in net4:
                return cls, what
        return None
    ip = ipaddress.IPv6Address(int(ip))  # drop any %scope for the table lookups
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        v4, form = embedded
        found = classify_address(v4)
        if found is None:
            return None
        cls, what = found
        return cls, f"{what} (IPv4 {v4} inside {form})"
    for net6, cls, what in _IPV6_TABLE:
        if ip in net6:
            return cls, what
    if ip not in _IPV6_GLOBAL_UNICAST:
        return AddressClass.RESERVED, "outside global unicast (2000::/3)"
    return None


def check_address(address: str | IPAddress, *, allow_private: bool) -> IPAddress:
    """One resolved address, parsed and checked; raises :class:`UnsafeDestination`."""
    try:
        ip = address if not isinstance(address, str) else ipaddress.ip_address(address)
    except ValueError as exc:
        raise UnsafeDestination("invalid_address", f"{address!r} is not an IP address") from exc
    found = classify_address(ip)
    if found is not None:
        cls, what = found
        if cls is AddressClass.METADATA or not allow_private:
            raise UnsafeDestination(cls.value, _refusal(f"address {ip}", what, cls))
    return ip


def check_resolved(
    addresses: Iterable[str | IPAddress], *, allow_private: bool
) -> tuple[IPAddress, ...]:
    """Check every address DNS returned; return them (deduplicated, in order) if all are safe.

    If any one is unsafe the whole answer is refused: a name that mixes public and private
    records is a rebinding attempt or a misconfiguration either way.
    """
    checked: dict[IPAddress, None] = {}
    for address in addresses:
        checked.setdefault(check_address(address, allow_private=allow_private), None)
    if not checked:
        raise UnsafeDestination("unresolved", "the host name resolved to no addresses")
    return tuple(checked)


def check_url(url: str, *, allow_private: bool) -> ParsedTarget:
    """Parse and check a destination URL; raises :class:`UnsafeDestination` saying why not.

    A host name that passes still has to pass :func:`check_resolved` at connect time.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeDestination("too_long", f"URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch <= " " or ch == "\x7f" or ch == "\\" for ch in url):
        raise UnsafeDestination(
            "invalid_url", "URL contains whitespace, control characters or backslashes"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination("invalid_url", f"URL cannot be parsed: {exc}") from exc
    scheme = parts.scheme
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeDestination("scheme", f"scheme must be http or https, not {scheme!r}")
    if "@" in parts.netloc:
        raise UnsafeDestination("userinfo", "credentials in the URL (user@host) are not allowed")
    if not parts.hostname:
        raise UnsafeDestination("invalid_host", "URL has no host")
    if port == 0:
        raise UnsafeDestination("invalid_url", "port 0 is not a valid destination port")
    host, ip = _normalize_host(parts.hostname)
    if ip is not None:
        check_address(ip, allow_private=allow_private)
    else:
        _check_name(host, allow_private=allow_private)
    port = port if port is not None else _DEFAULT_PORTS[scheme]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    url_host = f"[{host}]" if isinstance(ip, ipaddress.IPv6Address) else host
    netloc = url_host if port == _DEFAULT_PORTS[scheme] else f"{url_host}:{port}"
    return ParsedTarget(
        url=f"{scheme}://{netloc}{path}", scheme=scheme, host=host, port=port, path=path, ip=ip
    )


def _normalize_host(hostname: str) -> tuple[str, IPAddress | None]:
    """Lower-case ASCII host (IDNA-encoded) and its IP if it is any spelling of an IP."""
    if ":" in hostname:  # only IPv6 literals contain colons (urlsplit stripped the brackets)
        if "%" in hostname:
            raise UnsafeDestination("invalid_host", "scoped IPv6 addresses (%zone) are refused")
        try:
            return str(ipaddress.IPv6Address(hostname)), ipaddress.IPv6Address(hostname)
        except ValueError as exc:
            raise UnsafeDestination("invalid_host", f"{hostname!r} is not an IPv6 address") from exc
    try:
        # IDNA also maps full-width digits and dots (U+FF11, U+FF0E, ...) to ASCII.
        host = (
            hostname.encode("idna").decode("ascii").lower() if not hostname.isascii() else hostname
        )
    except UnicodeError as exc:
        raise UnsafeDestination("invalid_host", f"{hostname!r} is not a valid host name") from exc
    host = host.removesuffix(".")
    labels = host.split(".")
    if labels and _IPV4_PART.match(labels[-1]):
        ip4 = _parse_ipv4(labels)
        return str(ip4), ip4
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise UnsafeDestination("invalid_host", f"{hostname!r} is not a valid host name")
    return host, None


def _parse_ipv4(parts: list[str]) -> ipaddress.IPv4Address:
    """Parse an IPv4 host the way resolvers (``inet_aton``) and browsers (WHATWG) do.

    1 to 4 parts, each decimal, ``0x`` hex or ``0``-prefixed octal; the last part fills the
    remaining bytes. A host ending in a number that does not parse is refused outright.
    """
    invalid = UnsafeDestination("invalid_host", f"{'.'.join(parts)!r} is a malformed IPv4 address")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(p) for p in parts):
        raise invalid
    numbers: list[int] = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if any(c in "89" for c in part):
                raise invalid
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise invalid
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _check_name(host: str, *, allow_private: bool) -> None:
    if host in _METADATA_NAMES:
        raise UnsafeDestination(
            AddressClass.METADATA.value,
            _refusal(f"host {host!r}", "a cloud metadata service", AddressClass.METADATA),
        )
    if allow_private:
        return
    if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES):
        what = "a local-only name"
    elif "." not in host:
        what = "a single-label name (resolved through local search domains)"
    else:
        return
    raise UnsafeDestination(
        AddressClass.LOCAL_NAME.value, _refusal(f"host {host!r}", what, AddressClass.LOCAL_NAME)
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "an IPv4-mapped IPv6 address"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "a NAT64 address"
    if ip.sixtofour is not None:
        return ip.sixtofour, "a 6to4 address"
    return None


def _refusal(subject: str, what: str, cls: AddressClass) -> str:
    if cls is AddressClass.METADATA:
        return f"{subject} is {what}; webhooks are never sent there"
    return f"{subject} is {what}; only public destinations are allowed (allow_private is off)"

"""An httpx transport that checks every address it connects to (SSRF guard at connect time).

The check lives in the connection layer: a :class:`GuardedBackend` (an httpcore network
backend) resolves the host itself, passes *every* returned address through
:func:`~services.messenger.delivery.urlguard.check_resolved`, and connects to a checked
address — it never lets the system resolve the name again, so a DNS server that answers
"public" to the check and "private" to the connect (rebinding) gains nothing. The URL, the
``Host`` header, TLS SNI and certificate verification all keep the real host name, and the
connection pool is keyed by it, so TLS stays as strict as without the guard.

Redirects are never followed (the client is built with ``follow_redirects=False``), and a
custom transport means no environment proxy is used (a proxy would connect for us,
unchecked). With ``allow_private`` the same path runs, and only cloud metadata addresses are
refused.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from services.messenger.delivery.urlguard import UnsafeDestination, check_resolved

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses``: how a host name is resolved (the system resolver by default;
tests pass their own)."""

SocketOption = typing.Any


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver returns for ``host`` (IPv4 and IPv6)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class UnsafeConnection(Exception):
    """The host resolved to an address the guard refuses. Not an httpx error on purpose: the
    sender tells it apart from a network failure (it is not worth retrying)."""

    def __init__(self, error: UnsafeDestination) -> None:
        super().__init__(error.message)
        self.reason = error.reason
        self.message = error.message


async def resolve_checked(
    host: str, port: int, *, resolver: Resolver, allow_private: bool
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """Resolve ``host`` (an IP literal resolves to itself) and check every address.

    Raises :class:`~services.messenger.delivery.urlguard.UnsafeDestination` if any is refused.
    """
    try:
        addresses: list[str] = [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        addresses = await resolver(host, port)
    return check_resolved(addresses, allow_private=allow_private)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self,
        *,
        resolver: Resolver,
        allow_private: bool,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.resolver = resolver
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                checked = await resolve_checked(
                    host, port, resolver=self.resolver, allow_private=self.allow_private
                )
        except UnsafeDestination as exc:
            raise UnsafeConnection(exc) from None
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for ip in checked:
            try:
                return await self.inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # check_resolved never returns an empty tuple
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not webhook destinations")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool connects through a
    :class:`GuardedBackend` (httpx has no public parameter for the network backend, so the
    pool is rebuilt with the same options; ``tests/messenger`` pins this down)."""

    def __init__(self, *, resolver: Resolver, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedBackend(resolver=resolver, allow_private=allow_private),
        )


def webhook_client(
    *, resolver: Resolver, allow_private: bool, max_connections: int
) -> httpx.AsyncClient:
    """The one HTTP client of the messenger: guarded, no redirects, no cookies kept (a
    receiver's ``Set-Cookie`` must not ride along to the next attempt or destination)."""
    transport = GuardedTransport(
        resolver=resolver,
        allow_private=allow_private,
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        ),
    )
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
        headers={"user-agent": "clm-messenger/0.1"},
    )

"""Save-time check of a destination URL: its syntax and host, then every address its host
resolves to now (the same check runs again at every connection)."""

from __future__ import annotations

import asyncio

from services.messenger.delivery.urlguard import UnsafeDestination, check_url
from services.messenger.webhooks.transport import Resolver, resolve_checked
from shared.errors import Unprocessable

RESOLVE_TIMEOUT = 5.0


async def checked_url(url: str, *, allow_private: bool, resolver: Resolver) -> str:
    """The normalized URL, or :class:`~shared.errors.Unprocessable` (422) saying why not."""
    try:
        target = check_url(url, allow_private=allow_private)
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            await resolve_checked(
                target.host, target.port, resolver=resolver, allow_private=allow_private
            )
    except UnsafeDestination as exc:
        raise Unprocessable(
            f"url refused: {exc.message}", code="unsafe_destination", details={"reason": exc.reason}
        ) from None
    except (OSError, TimeoutError) as exc:
        raise Unprocessable(
            f"url refused: cannot resolve the host ({type(exc).__name__})",
            code="unresolvable_destination",
        ) from None
    return target.url

"""Sleeping until there is work: a wake-up event, the stop event, or a poll interval."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_for_work(wake: asyncio.Event, stop: asyncio.Event, *, timeout: float) -> None:
    """Return when ``wake`` or ``stop`` is set, or after ``timeout`` seconds; clears ``wake``."""
    if not wake.is_set() and not stop.is_set():
        waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            for waiter in waiters:
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
    wake.clear()

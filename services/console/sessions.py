"""Server-side sessions, kept in this process's memory.

The browser holds only a random session id (an httpOnly, SameSite=Strict cookie); the admin
token it signed in with stays here. A restart of the console signs everyone out, and two
console instances do not share sessions (put one behind a load balancer with sticky
sessions, or run one).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

#: Sessions kept at most; the least recently used goes first beyond it.
MAX_SESSIONS: Final = 1000


@dataclass
class Session:
    id: str
    token: str
    csrf: str
    created_at: datetime
    seen_at: datetime
    #: one-time messages for the next page ("rule saved")
    flashes: list[str] = field(default_factory=list)


class SessionStore:
    def __init__(self, *, idle: timedelta, max_sessions: int = MAX_SESSIONS) -> None:
        self.idle = idle
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}

    def create(self, token: str, *, now: datetime) -> Session:
        self._expire(now)
        while len(self._sessions) >= self.max_sessions:
            oldest = min(self._sessions.values(), key=lambda s: s.seen_at)
            del self._sessions[oldest.id]
        session = Session(
            id=secrets.token_urlsafe(32),
            token=token,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            seen_at=now,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, *, now: datetime) -> Session | None:
        """The live session with this id (its idle clock restarts), else None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if now - session.seen_at > self.idle:
            del self._sessions[session_id]
            return None
        session.seen_at = now
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _expire(self, now: datetime) -> None:
        for session in [s for s in self._sessions.values() if now - s.seen_at > self.idle]:
            del self._sessions[session.id]

    def __len__(self) -> int:
        return len(self._sessions)

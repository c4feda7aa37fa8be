"""Rules and their versions in PostgreSQL. Callers own the transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine import revision
from services.trigger_engine.core.rules import Rule
from services.trigger_engine.rules.models import RuleRow, RuleVersionRow
from shared.errors import Conflict, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredRule:
    rule: Rule
    created_at: datetime
    updated_at: datetime


def _definition(rule: Rule) -> dict[str, Any]:
    return rule.model_dump(mode="json")


async def list_current(session: AsyncSession) -> list[StoredRule]:
    rows = await session.execute(
        select(RuleRow, RuleVersionRow)
        .join(
            RuleVersionRow,
            (RuleVersionRow.key == RuleRow.key)
            & (RuleVersionRow.version == RuleRow.current_version),
        )
        .where(RuleRow.deleted_at.is_(None))
        .order_by(RuleRow.key)
    )
    return [
        StoredRule(Rule.model_validate(version.definition), row.created_at, row.updated_at)
        for row, version in rows
    ]


async def get(session: AsyncSession, key: str) -> StoredRule:
    found = await session.execute(
        select(RuleRow, RuleVersionRow)
        .join(
            RuleVersionRow,
            (RuleVersionRow.key == RuleRow.key)
            & (RuleVersionRow.version == RuleRow.current_version),
        )
        .where(RuleRow.key == key, RuleRow.deleted_at.is_(None))
    )
    pair = found.first()
    if pair is None:
        raise NotFound(f"no rule with key {key!r}")
    row, version = pair
    return StoredRule(Rule.model_validate(version.definition), row.created_at, row.updated_at)


async def create(session: AsyncSession, rule: Rule, *, now: datetime) -> StoredRule:
    """Store a new rule as version 1 (or the next version of a deleted rule of that key)."""
    row = await session.get(RuleRow, rule.key, with_for_update=True)
    if row is not None and row.deleted_at is None:
        raise Conflict(f"a rule with key {rule.key!r} already exists; PUT to change it")
    version = 1 if row is None else row.current_version + 1
    stored = rule.model_copy(update={"version": version})
    if row is None:
        row = RuleRow(key=rule.key, created_at=now)
        session.add(row)
    row.current_version = version
    row.enabled = stored.enabled
    row.updated_at = now
    row.deleted_at = None
    await session.flush()
    session.add(
        RuleVersionRow(
            key=rule.key, version=version, definition=_definition(stored), created_at=now
        )
    )
    await session.flush()
    await revision.bump(session)
    return StoredRule(stored, row.created_at, now)


async def update(session: AsyncSession, rule: Rule, *, now: datetime) -> StoredRule:
    """Store ``rule`` as the next version; runs in flight stay on theirs."""
    row = await session.get(RuleRow, rule.key, with_for_update=True)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no rule with key {rule.key!r}")
    version = row.current_version + 1
    stored = rule.model_copy(update={"version": version})
    row.current_version = version
    row.enabled = stored.enabled
    row.updated_at = now
    session.add(
        RuleVersionRow(
            key=rule.key, version=version, definition=_definition(stored), created_at=now
        )
    )
    await session.flush()
    await revision.bump(session)
    return StoredRule(stored, row.created_at, now)


async def delete(session: AsyncSession, key: str, *, now: datetime) -> None:
    """Soft delete: runs in flight exit at their next step; versions stay for stats."""
    row = await session.get(RuleRow, key, with_for_update=True)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no rule with key {key!r}")
    row.deleted_at = now
    row.enabled = False
    row.updated_at = now
    await session.flush()
    await revision.bump(session)


async def versions(session: AsyncSession, key: str) -> list[tuple[Rule, datetime]]:
    rows = await session.scalars(
        select(RuleVersionRow).where(RuleVersionRow.key == key).order_by(RuleVersionRow.version)
    )
    found = [(Rule.model_validate(r.definition), r.created_at) for r in rows]
    if not found:
        raise NotFound(f"no rule with key {key!r}")
    return found


async def all_versions(session: AsyncSession) -> tuple[list[Rule], list[Rule]]:
    """(current versions of live rules, every stored version) for building a ``RuleSet``.

    A stored version that no longer validates (the rule model changed under it) is logged
    and left out, so that one stale rule cannot stop the engine: runs pinned to it exit.
    """
    rows = await session.execute(
        text(
            "SELECT v.definition::text, r.deleted_at IS NULL AND v.version = r.current_version "
            "FROM engine.rule_versions v JOIN engine.rules r ON r.key = v.key"
        )
    )
    current: list[Rule] = []
    history: list[Rule] = []
    for definition, is_current in rows:
        try:
            rule = Rule.model_validate_json(definition)
        except ValidationError as exc:
            log.error("stored rule version no longer valid; skipped", extra={"error": str(exc)})
            continue
        (current if is_current else history).append(rule)
    return current, history

"""The rules, lifecycle model and send policy a step runs against, cached per process.

Every transaction that changes a rule, the lifecycle model or the send policy also bumps
``engine.config_revision`` (:func:`.revision.bump`, a value from a sequence, visible when the
change commits). Owners read the revision with every checkpoint and reload only when it
moved, so a change made through any instance's API applies everywhere within a checkpoint
interval, whatever the instances' clocks say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.lifecycle import LifecycleModel
from services.trigger_engine.core.policy import NO_POLICY, SendPolicy
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.lifecycle import repository as lifecycle_repo
from services.trigger_engine.revision import CURRENT
from services.trigger_engine.rules import repository as rules_repo
from services.trigger_engine.send_policy import repository as policy_repo


@dataclass(frozen=True)
class EngineConfig:
    rules: RuleSet
    lifecycle: LifecycleModel
    lifecycle_version: int
    policy: SendPolicy = NO_POLICY
    policy_version: int = 0
    #: when the lifecycle model was stored: the instant a pass moves customers at (the same
    #: however often the pass runs, so a replayed pass derives the same ids)
    lifecycle_at: datetime | None = None

    @property
    def stage_names(self) -> list[str]:
        return self.lifecycle.stage_names()


class ConfigCache:
    def __init__(self) -> None:
        self._revision: tuple[Any, ...] | None = None
        self._config: EngineConfig | None = None

    def invalidate(self) -> None:
        self._revision = None

    async def get(self, session: AsyncSession) -> EngineConfig:
        revision = (await session.scalar(CURRENT),)
        if self._config is None or revision != self._revision:
            current, history = await rules_repo.all_versions(session)
            version, model = await lifecycle_repo.current(session)
            policy_version, policy = await policy_repo.current(session)
            self._config = EngineConfig(
                rules=RuleSet.of(current, history=history),
                lifecycle=model,
                lifecycle_version=version,
                policy=policy,
                policy_version=policy_version,
                lifecycle_at=await lifecycle_repo.stored_at(session, version),
            )
            self._revision = revision
        return self._config

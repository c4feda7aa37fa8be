"""The trigger_engine service's tables (schema ``engine``).

Each concern declares its tables in its own ``models.py`` on :class:`~.base.Base`; this
module imports them all so that ``Base.metadata`` is complete for migrations and checks.
"""

from __future__ import annotations

from services.trigger_engine.base import SCHEMA, Base
from services.trigger_engine.customers.models import (
    ConfigRevisionRow,
    Customer,
    ErasureRow,
    IdentityLink,
    StageTransitionRow,
)
from services.trigger_engine.events.models import EventLogRow, StoredEvent
from services.trigger_engine.lifecycle.models import LifecyclePassRow, LifecycleVersionRow
from services.trigger_engine.outbox.models import OutboxRow
from services.trigger_engine.partitions.models import HandoffJournalRow, PartitionRow
from services.trigger_engine.rules.models import RuleRow, RuleVersionRow
from services.trigger_engine.runs.models import RunEventRow
from services.trigger_engine.send_policy.models import SendPolicyVersionRow

__all__ = [
    "SCHEMA",
    "Base",
    "ConfigRevisionRow",
    "Customer",
    "ErasureRow",
    "EventLogRow",
    "HandoffJournalRow",
    "IdentityLink",
    "LifecyclePassRow",
    "LifecycleVersionRow",
    "OutboxRow",
    "PartitionRow",
    "RuleRow",
    "RuleVersionRow",
    "RunEventRow",
    "SendPolicyVersionRow",
    "StageTransitionRow",
    "StoredEvent",
]

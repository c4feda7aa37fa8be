"""``POST /v1/templates/{name}/preview``: a template rendered for a sample or a real customer.

The messenger knows a customer through the actions it delivered: a real customer's preview
renders with the webhook data of their newest delivery (its customer, cart and offer), a
sample one with :data:`SAMPLE_DATA`, in the contract's shape.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.deliveries.models import Delivery

SAMPLE_DATA: Final[dict[str, Any]] = {
    "action_id": "act_preview",
    "rule": "cart-abandon",
    "rule_version": 1,
    "step": 1,
    "channel": "email",
    "template": "cart_reminder",
    "customer": {
        "id": "user-42",
        "email": "ada@example.com",
        "phone": None,
        "traits": {"first_name": "Ada", "email": "ada@example.com"},
        "stage": "engaged",
    },
    "context": {
        "cart": {
            "products": [{"product_id": "sku-1", "name": "Espresso cups", "price": 25.0}],
            "value": 25.0,
        },
        "offer": {"code": "CART10", "kind": "discount", "value": 10},
        "trigger": {"event": "Product Added", "message_id": "preview"},
    },
}


async def latest_data(session: AsyncSession, customer_id: str) -> dict[str, Any] | None:
    """The webhook data of the customer's newest delivery that still has it (not erased)."""
    payload: dict[str, Any] | None = await session.scalar(
        select(Delivery.payload)
        .where(Delivery.customer_key == customer_id, Delivery.payload.is_not(None))
        .order_by(Delivery.created_at.desc())
        .limit(1)
    )
    return payload

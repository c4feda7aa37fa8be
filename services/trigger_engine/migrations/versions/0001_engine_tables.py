"""engine tables: event store, customers, identity links, stage history, rules and
versions, lifecycle versions, run records, durable timers, outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("stage", sa.Text(), nullable=True),
        sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_key", name=op.f("pk_customers")),
        schema="engine",
    )
    op.create_index("ix_customers_stage", "customers", ["stage"], unique=False, schema="engine")
    op.create_table(
        "events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("call", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
        schema="engine",
    )
    op.create_index(
        "ix_events_customer_key_timestamp",
        "events",
        ["customer_key", "timestamp"],
        unique=False,
        schema="engine",
    )
    op.create_index(
        "ix_events_metric_timestamp",
        "events",
        ["timestamp"],
        unique=False,
        schema="engine",
        postgresql_where=sa.text(
            "event IN ('Order Completed', 'Order Refunded', 'Order Cancelled', 'Survey Responded')"
        ),
    )
    op.create_table(
        "identity_links",
        sa.Column("anonymous_id", sa.Text(), nullable=False),
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("anonymous_id", name=op.f("pk_identity_links")),
        schema="engine",
    )
    op.create_index(
        op.f("ix_engine_identity_links_customer_key"),
        "identity_links",
        ["customer_key"],
        unique=False,
        schema="engine",
    )
    op.create_table(
        "lifecycle_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_lifecycle_versions")),
        schema="engine",
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_id")),
        schema="engine",
    )
    op.create_index(
        op.f("ix_engine_outbox_customer_key"),
        "outbox",
        ["customer_key"],
        unique=False,
        schema="engine",
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        unique=False,
        schema="engine",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "rules",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rules")),
        schema="engine",
    )
    op.create_table(
        "run_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("rule_key", sa.Text(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_events")),
        schema="engine",
    )
    op.create_index(
        "ix_run_events_customer_key", "run_events", ["customer_key"], unique=False, schema="engine"
    )
    op.create_index(
        "ix_run_events_rule_key_kind",
        "run_events",
        ["rule_key", "kind"],
        unique=False,
        schema="engine",
    )
    op.create_table(
        "stage_transitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("from_stage", sa.Text(), nullable=True),
        sa.Column("to_stage", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("cause_event", sa.Text(), nullable=True),
        sa.Column("cause_message_id", sa.Text(), nullable=True),
        sa.Column("reactivated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_transitions")),
        schema="engine",
    )
    op.create_index(
        "ix_stage_transitions_at", "stage_transitions", ["at"], unique=False, schema="engine"
    )
    op.create_index(
        "ix_stage_transitions_customer_key_at",
        "stage_transitions",
        ["customer_key", "at"],
        unique=False,
        schema="engine",
    )
    op.create_table(
        "timers",
        sa.Column("timer_id", sa.Text(), nullable=False),
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("rule_key", sa.Text(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("timer_id", name=op.f("pk_timers")),
        schema="engine",
    )
    op.create_index(
        op.f("ix_engine_timers_customer_key"),
        "timers",
        ["customer_key"],
        unique=False,
        schema="engine",
    )
    op.create_index("ix_timers_due_at", "timers", ["due_at"], unique=False, schema="engine")
    op.create_table(
        "rule_versions",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key"], ["engine.rules.key"], name=op.f("fk_rule_versions_key_rules")
        ),
        sa.PrimaryKeyConstraint("key", "version", name=op.f("pk_rule_versions")),
        schema="engine",
    )


def downgrade() -> None:
    op.drop_table("rule_versions", schema="engine")
    op.drop_index("ix_timers_due_at", table_name="timers", schema="engine")
    op.drop_index(op.f("ix_engine_timers_customer_key"), table_name="timers", schema="engine")
    op.drop_table("timers", schema="engine")
    op.drop_index(
        "ix_stage_transitions_customer_key_at", table_name="stage_transitions", schema="engine"
    )
    op.drop_index("ix_stage_transitions_at", table_name="stage_transitions", schema="engine")
    op.drop_table("stage_transitions", schema="engine")
    op.drop_index("ix_run_events_rule_key_kind", table_name="run_events", schema="engine")
    op.drop_index("ix_run_events_customer_key", table_name="run_events", schema="engine")
    op.drop_table("run_events", schema="engine")
    op.drop_table("rules", schema="engine")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        schema="engine",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_index(op.f("ix_engine_outbox_customer_key"), table_name="outbox", schema="engine")
    op.drop_table("outbox", schema="engine")
    op.drop_table("lifecycle_versions", schema="engine")
    op.drop_index(
        op.f("ix_engine_identity_links_customer_key"), table_name="identity_links", schema="engine"
    )
    op.drop_table("identity_links", schema="engine")
    op.drop_index(
        "ix_events_metric_timestamp",
        table_name="events",
        schema="engine",
        postgresql_where=sa.text(
            "event IN ('Order Completed', 'Order Refunded', 'Order Cancelled', 'Survey Responded')"
        ),
    )
    op.drop_index("ix_events_customer_key_timestamp", table_name="events", schema="engine")
    op.drop_table("events", schema="engine")
    op.drop_index("ix_customers_stage", table_name="customers", schema="engine")
    op.drop_table("customers", schema="engine")

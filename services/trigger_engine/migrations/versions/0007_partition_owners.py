"""one writer per partition: ownership, checkpoints, an event log off the hot path

The engine instance that owns a clm.events partition now keeps its customers' states in
memory and checkpoints them, with the partition's consumed offsets, in one call of
``engine.checkpoint`` (one round trip, one transaction). Ownership is fenced: claiming a
partition bumps its ``generation``, and a checkpoint whose generation is no longer the
partition's writes nothing.

- ``engine.partitions``: the owner's ``generation``, the offsets consumed of clm.events and of
  the engine's hand-off topic, and the lifecycle pass's progress in the partition;
- ``engine.customers``: the owning ``partition`` and ``next_release_at`` (the earliest time one
  of its timers may fire), and the customer's ``email`` (lower case) and ``phone`` from its
  traits, indexed for searching customers. Rows stored before have NULL there; the owner
  adopts them (fills them from the state) when it is assigned their partition.
  ``engine.timers`` is dropped: a customer's pending timers are part of its state;
- ``engine.event_log``: the events that are not commerce events, one row per customer and
  checkpoint (the records as JSON); commerce events stay one row each in ``engine.events``;
- ``engine.erasures``: erasure requests, carried out by the customer's owner;
- ``engine.config_revision``: bumped (from a sequence) in every transaction that changes a
  rule, the lifecycle model or the send policy, so instances reload exactly when a change
  committed;
- ``engine.outbox.partition``: the owner republishes its partitions' unpublished rows when
  it is assigned them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TYPES = """
CREATE TYPE engine.partition_mark AS (
  partition int, generation bigint, events_offset bigint, handoff_offset bigint,
  watermark timestamptz, pass_version int, pass_cursor text, pass_customers int,
  pass_transitions int
);
CREATE TYPE engine.state_row AS (
  customer_key text, partition int, state bytea, stage text, stage_entered_at timestamptz,
  next_release_at timestamptz, user_id text, email text, phone text, orders int,
  revenue float8, first_seen_at timestamptz, last_seen_at timestamptz,
  first_order_at timestamptz, last_order_at timestamptz
);
CREATE TYPE engine.link_row AS (anonymous_id text, customer_key text);
CREATE TYPE engine.transition_row AS (
  id uuid, customer_key text, from_stage text, to_stage text, at timestamptz, cause text,
  cause_event text, cause_message_id text, reactivated bool
);
CREATE TYPE engine.run_row AS (
  id uuid, run_id text, customer_key text, rule_key text, rule_version int, kind text,
  holdout bool, step int, detail text, at timestamptz
);
CREATE TYPE engine.event_row AS (
  event_id uuid, customer_key text, source text, message_id text, call text, event text,
  "timestamp" timestamptz, received_at timestamptz, payload text
);
CREATE TYPE engine.log_row AS (
  customer_key text, partition int, "offset" bigint, first_at timestamptz,
  last_at timestamptz, received_at timestamptz, count int, records bytea
);
CREATE TYPE engine.outbox_row AS (
  id text, customer_key text, partition int, kind text, payload text, created_at timestamptz
);
CREATE TYPE engine.erasure_done AS (erasure_id uuid, customer_key text);
CREATE TYPE engine.merge_row AS (source text, target text);
"""

#: One checkpoint: fence, erase, write, re-key, mark published, record offsets; then what the
#: owner must know (the configuration revision, every partition's watermark, erasures due).
CHECKPOINT = r"""
CREATE FUNCTION engine.checkpoint(
  p_topic text,
  p_marks engine.partition_mark[],
  p_states engine.state_row[],
  p_removed text[],
  p_links engine.link_row[],
  p_merges engine.merge_row[],
  p_transitions engine.transition_row[],
  p_runs engine.run_row[],
  p_events engine.event_row[],
  p_log engine.log_row[],
  p_outbox engine.outbox_row[],
  p_published text[],
  p_erased engine.erasure_done[],
  p_now timestamptz
) RETURNS TABLE (
  revision bigint, partitions int[], watermarks timestamptz[], erasure_ids uuid[],
  erasure_keys text[], to_publish text[], erasure_times timestamptz[]
) LANGUAGE plpgsql AS $$
DECLARE
  fenced int;
  erasure engine.erasure_done;
  counts jsonb;
  n bigint;
BEGIN
  -- Fence first: the partition rows' locks serialize this with a claim by a new owner.
  UPDATE engine.partitions AS p SET
    events_offset = coalesce(m.events_offset, p.events_offset),
    handoff_offset = coalesce(m.handoff_offset, p.handoff_offset),
    watermark = GREATEST(p.watermark, m.watermark),
    pass_version = m.pass_version,
    pass_cursor = m.pass_cursor,
    updated_at = p_now
  FROM unnest(p_marks) AS m
  WHERE p.topic = p_topic AND p.partition = m.partition AND p.generation = m.generation;
  GET DIAGNOSTICS fenced = ROW_COUNT;
  IF fenced <> coalesce(cardinality(p_marks), 0) THEN
    RAISE EXCEPTION 'partition ownership lost (fenced)' USING ERRCODE = 'CLM01';
  END IF;

  DELETE FROM engine.customers WHERE customer_key = ANY(p_removed);

  INSERT INTO engine.customers AS c (
    customer_key, partition, state, stage, stage_entered_at, next_release_at, user_id, email,
    phone, orders, revenue, first_seen_at, last_seen_at, first_order_at, last_order_at,
    updated_at
  )
  SELECT s.customer_key, s.partition, s.state, s.stage, s.stage_entered_at, s.next_release_at,
    s.user_id, s.email, s.phone, s.orders, s.revenue, s.first_seen_at, s.last_seen_at,
    s.first_order_at, s.last_order_at, p_now
  FROM unnest(p_states) AS s
  ON CONFLICT (customer_key) DO UPDATE SET
    partition = excluded.partition, state = excluded.state, stage = excluded.stage,
    stage_entered_at = excluded.stage_entered_at, next_release_at = excluded.next_release_at,
    user_id = excluded.user_id, email = excluded.email, phone = excluded.phone,
    orders = excluded.orders, revenue = excluded.revenue,
    first_seen_at = excluded.first_seen_at, last_seen_at = excluded.last_seen_at,
    first_order_at = excluded.first_order_at, last_order_at = excluded.last_order_at,
    updated_at = excluded.updated_at;

  INSERT INTO engine.identity_links AS l (anonymous_id, customer_key, linked_at)
  SELECT k.anonymous_id, k.customer_key, p_now FROM unnest(p_links) AS k
  ON CONFLICT (anonymous_id) DO UPDATE SET customer_key = excluded.customer_key;

  INSERT INTO engine.stage_transitions (
    id, customer_key, from_stage, to_stage, at, cause, cause_event, cause_message_id,
    reactivated
  )
  SELECT * FROM unnest(p_transitions) ON CONFLICT (id) DO NOTHING;

  INSERT INTO engine.run_events (
    id, run_id, customer_key, rule_key, rule_version, kind, holdout, step, detail, at
  )
  SELECT * FROM unnest(p_runs) ON CONFLICT (id) DO NOTHING;

  INSERT INTO engine.events (
    event_id, customer_key, source, message_id, call, event, "timestamp", received_at, payload
  )
  SELECT e.event_id, e.customer_key, e.source, e.message_id, e.call, e.event, e."timestamp",
    e.received_at, e.payload::jsonb
  FROM unnest(p_events) AS e ON CONFLICT (event_id) DO NOTHING;

  INSERT INTO engine.event_log (
    customer_key, partition, "offset", first_at, last_at, received_at, count, records
  )
  SELECT * FROM unnest(p_log) ON CONFLICT DO NOTHING;

  INSERT INTO engine.outbox (id, customer_key, partition, kind, payload, created_at)
  SELECT o.id, o.customer_key, o.partition, o.kind, o.payload::jsonb, o.created_at
  FROM unnest(p_outbox) AS o ON CONFLICT (id) DO NOTHING;

  -- An anonymous customer merged into a known one: its rows follow it.
  UPDATE engine.events AS t SET customer_key = m.target FROM unnest(p_merges) AS m
  WHERE t.customer_key = m.source;
  UPDATE engine.event_log AS t SET customer_key = m.target FROM unnest(p_merges) AS m
  WHERE t.customer_key = m.source;
  UPDATE engine.stage_transitions AS t SET customer_key = m.target FROM unnest(p_merges) AS m
  WHERE t.customer_key = m.source;
  UPDATE engine.run_events AS t SET customer_key = m.target FROM unnest(p_merges) AS m
  WHERE t.customer_key = m.source;
  UPDATE engine.outbox AS t SET customer_key = m.target FROM unnest(p_merges) AS m
  WHERE t.customer_key = m.source;
  UPDATE engine.identity_links AS t SET customer_key = m.target FROM unnest(p_merges) AS m
  WHERE t.customer_key = m.source;

  UPDATE engine.outbox SET published_at = p_now
  WHERE id = ANY(p_published) AND published_at IS NULL;

  -- Last: what this very checkpoint wrote for an erased customer goes too (not the notice).
  FOREACH erasure IN ARRAY coalesce(p_erased, '{}') LOOP
    counts := '{}'::jsonb;
    DELETE FROM engine.customers WHERE customer_key = erasure.customer_key;
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('customers', n);
    DELETE FROM engine.events WHERE customer_key = erasure.customer_key;
    GET DIAGNOSTICS n = ROW_COUNT;
    WITH gone AS (
      DELETE FROM engine.event_log WHERE customer_key = erasure.customer_key RETURNING count
    ) SELECT n + coalesce(sum(count), 0) INTO n FROM gone;
    counts := counts || jsonb_build_object('events', n);
    DELETE FROM engine.stage_transitions WHERE customer_key = erasure.customer_key;
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('stage_transitions', n);
    DELETE FROM engine.run_events WHERE customer_key = erasure.customer_key;
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('run_events', n);
    DELETE FROM engine.outbox WHERE customer_key = erasure.customer_key AND kind <> 'erasure';
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('outbox', n);
    DELETE FROM engine.identity_links WHERE customer_key = erasure.customer_key;
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('identity_links', n);
    UPDATE engine.erasures SET done_at = p_now, erased = counts
    WHERE erasure_id = erasure.erasure_id;
  END LOOP;

  -- Lifecycle passes: each owner walks its partitions; the pass is done when all are.
  IF EXISTS (
    SELECT 1 FROM unnest(p_marks) AS m WHERE m.pass_version IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM engine.lifecycle_passes AS l WHERE l.version = m.pass_version)
  ) THEN
    INSERT INTO engine.lifecycle_passes (
      version, cursor, total, customers, transitions, started_at, updated_at, finished_at
    )
    SELECT DISTINCT m.pass_version, CAST(NULL AS text), (SELECT count(*) FROM engine.customers),
      0, 0, p_now, p_now, CAST(NULL AS timestamptz)
    FROM unnest(p_marks) AS m WHERE m.pass_version IS NOT NULL
    ON CONFLICT (version) DO NOTHING;
  END IF;
  UPDATE engine.lifecycle_passes AS l SET
    customers = l.customers + a.customers, transitions = l.transitions + a.transitions,
    updated_at = p_now
  FROM (
    SELECT m.pass_version AS version, sum(m.pass_customers) AS customers,
      sum(m.pass_transitions) AS transitions
    FROM unnest(p_marks) AS m WHERE m.pass_version IS NOT NULL GROUP BY 1
  ) AS a
  WHERE l.version = a.version AND (a.customers > 0 OR a.transitions > 0);
  UPDATE engine.lifecycle_passes AS l SET finished_at = p_now, updated_at = p_now
  WHERE l.finished_at IS NULL
    AND l.version IN (
      SELECT m.pass_version FROM unnest(p_marks) AS m
      WHERE m.pass_version IS NOT NULL AND m.pass_cursor IS NULL)
    AND NOT EXISTS (
      SELECT 1 FROM engine.partitions AS p WHERE p.topic = p_topic
        AND (p.pass_version IS NULL OR p.pass_version < l.version OR p.pass_cursor IS NOT NULL));

  RETURN QUERY SELECT
    (SELECT r.revision FROM engine.config_revision AS r WHERE r.id = 1),
    (SELECT array_agg(p.partition ORDER BY p.partition) FROM engine.partitions AS p
     WHERE p.topic = p_topic),
    (SELECT array_agg(p.watermark ORDER BY p.partition) FROM engine.partitions AS p
     WHERE p.topic = p_topic),
    (SELECT array_agg(e.erasure_id ORDER BY e.requested_at) FROM engine.erasures AS e
     WHERE e.done_at IS NULL AND e.partition = ANY(
       SELECT (m).partition FROM unnest(p_marks) AS m)),
    (SELECT array_agg(e.customer_key ORDER BY e.requested_at) FROM engine.erasures AS e
     WHERE e.done_at IS NULL AND e.partition = ANY(
       SELECT (m).partition FROM unnest(p_marks) AS m)),
    -- what the caller must publish: every row it passed that is not published yet (so a
    -- call tried again after a lost answer hands them over all the same)
    (SELECT coalesce(array_agg(o.id), '{}') FROM engine.outbox AS o
     WHERE o.id = ANY(SELECT (r).id FROM unnest(p_outbox) AS r) AND o.published_at IS NULL),
    (SELECT array_agg(e.requested_at ORDER BY e.requested_at) FROM engine.erasures AS e
     WHERE e.done_at IS NULL AND e.partition = ANY(
       SELECT (m).partition FROM unnest(p_marks) AS m));
END
$$;
"""


#: Actions written right after their batch (before the batch's checkpoint), fenced like it.
FLUSH_ACTIONS = r"""
CREATE FUNCTION engine.flush_actions(
  p_topic text, p_partitions int[], p_generations bigint[], p_outbox engine.outbox_row[]
) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  owned int;
  new_ids text[];
BEGIN
  -- KEY SHARE: no wait for a checkpoint writing the partition rows (it updates no key), but
  -- a claim (SELECT ... FOR UPDATE first) waits for this, and this for a claim.
  SELECT count(*) INTO owned FROM (
    SELECT 1 FROM engine.partitions AS p
    JOIN unnest(p_partitions, p_generations) AS f(partition, generation)
      ON p.topic = p_topic AND p.partition = f.partition AND p.generation = f.generation
    FOR KEY SHARE OF p
  ) AS mine;
  IF owned <> coalesce(cardinality(p_partitions), 0) THEN
    RAISE EXCEPTION 'partition ownership lost (fenced)' USING ERRCODE = 'CLM01';
  END IF;
  INSERT INTO engine.outbox (id, customer_key, partition, kind, payload, created_at)
  SELECT o.id, o.customer_key, o.partition, o.kind, o.payload::jsonb, o.created_at
  FROM unnest(p_outbox) AS o ON CONFLICT (id) DO NOTHING;
  -- every row passed that is not published yet: a call tried again hands them over too
  SELECT array_agg(o.id) INTO new_ids FROM engine.outbox AS o
  WHERE o.id = ANY(SELECT (r).id FROM unnest(p_outbox) AS r) AND o.published_at IS NULL;
  RETURN coalesce(new_ids, '{}');
END
$$;
"""


def upgrade() -> None:
    op.execute("DROP TABLE engine.timers")
    op.add_column(
        "partitions",
        sa.Column("generation", sa.BigInteger(), server_default="0", nullable=False),
        schema="engine",
    )
    for name, kind in (
        ("owner", sa.Text()),
        ("events_offset", sa.BigInteger()),
        ("handoff_offset", sa.BigInteger()),
        ("pass_version", sa.Integer()),
        ("pass_cursor", sa.Text()),
    ):
        op.add_column("partitions", sa.Column(name, kind, nullable=True), schema="engine")

    op.add_column("customers", sa.Column("partition", sa.Integer(), nullable=True), schema="engine")
    op.add_column(
        "customers",
        sa.Column("next_release_at", sa.DateTime(timezone=True), nullable=True),
        schema="engine",
    )
    op.create_index(
        "ix_customers_partition", "customers", ["partition", "customer_key"], schema="engine"
    )
    for column in ("email", "phone"):
        op.add_column("customers", sa.Column(column, sa.Text(), nullable=True), schema="engine")
        op.create_index(
            f"ix_customers_{column}",
            "customers",
            [sa.text(f"{column} text_pattern_ops")],
            schema="engine",
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )

    op.add_column("outbox", sa.Column("partition", sa.Integer(), nullable=True), schema="engine")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        schema="engine",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["partition", "seq"],
        schema="engine",
        postgresql_where=sa.text("published_at IS NULL"),
    )

    op.create_table(
        "event_log",
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("offset", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("records", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("customer_key", "partition", "offset", name=op.f("pk_event_log")),
        schema="engine",
    )
    op.create_index(
        "ix_event_log_last_at", "event_log", ["last_at"], schema="engine", postgresql_using="brin"
    )
    op.create_index(
        "ix_event_log_received_at",
        "event_log",
        ["received_at"],
        schema="engine",
        postgresql_using="brin",
    )

    op.create_table(
        "erasures",
        sa.Column("erasure_id", sa.Uuid(), nullable=False),
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased", sa.dialects.postgresql.JSONB(), nullable=True),
        sa.PrimaryKeyConstraint("erasure_id", name=op.f("pk_erasures")),
        schema="engine",
    )
    op.create_index(
        "ix_erasures_pending",
        "erasures",
        ["partition"],
        schema="engine",
        postgresql_where=sa.text("done_at IS NULL"),
    )

    op.execute("CREATE SEQUENCE engine.config_revision_seq")
    op.create_table(
        "config_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_revision")),
        schema="engine",
    )
    op.execute(
        "INSERT INTO engine.config_revision (id, revision) "
        "VALUES (1, nextval('engine.config_revision_seq'))"
    )

    for statement in TYPES.split(";"):
        if statement.strip():
            op.execute(statement)
    op.execute(CHECKPOINT)
    op.execute(FLUSH_ACTIONS)


def downgrade() -> None:
    op.execute("DROP FUNCTION engine.flush_actions(text, int[], bigint[], engine.outbox_row[])")
    op.execute(
        "DROP FUNCTION engine.checkpoint(text, engine.partition_mark[], engine.state_row[], "
        "text[], engine.link_row[], engine.merge_row[], engine.transition_row[], "
        "engine.run_row[], engine.event_row[], engine.log_row[], engine.outbox_row[], text[], "
        "engine.erasure_done[], timestamptz)"
    )
    for name in (
        "merge_row",
        "erasure_done",
        "outbox_row",
        "log_row",
        "event_row",
        "run_row",
        "transition_row",
        "link_row",
        "state_row",
        "partition_mark",
    ):
        op.execute(f"DROP TYPE engine.{name}")
    op.drop_table("config_revision", schema="engine")
    op.execute("DROP SEQUENCE engine.config_revision_seq")
    op.drop_table("erasures", schema="engine")
    op.drop_table("event_log", schema="engine")
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema="engine")
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        schema="engine",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_column("outbox", "partition", schema="engine")
    for column in ("email", "phone"):
        op.drop_index(f"ix_customers_{column}", table_name="customers", schema="engine")
        op.drop_column("customers", column, schema="engine")
    op.drop_index("ix_customers_partition", table_name="customers", schema="engine")
    op.drop_column("customers", "next_release_at", schema="engine")
    op.drop_column("customers", "partition", schema="engine")
    for name in ("pass_cursor", "pass_version", "handoff_offset", "events_offset", "owner"):
        op.drop_column("partitions", name, schema="engine")
    op.drop_column("partitions", "generation", schema="engine")
    op.create_table(
        "timers",
        sa.Column("timer_id", sa.Text(), nullable=False),
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("rule_key", sa.Text(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("timer_id", name="pk_timers"),
        schema="engine",
    )

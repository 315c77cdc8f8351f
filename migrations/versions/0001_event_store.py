"""The event store: one ordered log, partitioned by routing domain, and checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Why these columns:
# - position: the global position, from a sequence. Positions are handed out at insert
#   time, so under concurrent writers they become visible out of order; readers use
#   tx_id (below) to stay gap-safe (see eventstore/postgres.py).
# - tx_id: the writing transaction's id (xid8), the key of log order.
# - domain: the routing domain, also inside stream_id; the table is partitioned by it so
#   a domain can be split off to its own partition or database without rewriting events.
UPGRADE = """
CREATE SEQUENCE events_position_seq AS bigint;

CREATE TABLE events (
    position    bigint      NOT NULL DEFAULT nextval('events_position_seq'),
    tx_id       xid8        NOT NULL DEFAULT pg_current_xact_id(),
    domain      text        NOT NULL,
    category    text        NOT NULL,
    stream_id   text        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    event_id    uuid        NOT NULL,
    type        text        NOT NULL,
    data        jsonb       NOT NULL,
    metadata    jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (domain, position),
    UNIQUE (domain, stream_id, version),
    UNIQUE (domain, event_id)
) PARTITION BY LIST (domain);

ALTER SEQUENCE events_position_seq OWNED BY events.position;

CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE INDEX events_log_order ON events (tx_id, position);
CREATE INDEX events_category_order ON events (category, tx_id, position);

CREATE TABLE checkpoints (
    name        text        PRIMARY KEY,
    tx_id       xid8        NOT NULL,
    position    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
"""


def _statements(sql: str) -> list[str]:
    # asyncpg runs one statement per prepared query, so split the script.
    return [s.strip() for s in sql.split(";") if s.strip()]


def upgrade() -> None:
    for statement in _statements(UPGRADE):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE checkpoints")
    op.execute("DROP TABLE events")

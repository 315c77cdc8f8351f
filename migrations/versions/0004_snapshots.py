"""Snapshots of in-memory read models, so that a restart replays only the log's tail.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

A snapshot is the state a reader built from the log up to a cursor, opaque to the
database (the router signs and versions its own). One row per name: a newer cursor or
another version of the code replaces it.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE snapshots (
    name      text        PRIMARY KEY,
    tx_id     xid8        NOT NULL,
    position  bigint      NOT NULL,
    version   text        NOT NULL,
    body      bytea       NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
)
""")


def downgrade() -> None:
    op.execute("DROP TABLE snapshots")

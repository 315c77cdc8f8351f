"""The append path's first step as one server-side call: lock the streams, then read them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Why a function: it saves a round trip per batch. Why it is still correct: a VOLATILE
# plpgsql function takes a new snapshot for each statement under READ COMMITTED, so the
# reads after the lock loop see everything the previous holder of each lock committed.
# Locks are taken in the order given (the caller sorts the keys): no deadlock cycles.
# Advisory locks assign no transaction id, so the batch's xid is assigned afterwards,
# at its INSERT (see eventstore/postgres.py for why that order matters).
FUNCTION = """
CREATE FUNCTION cr_lock_and_read(lock_class int4, lock_keys int4[], stream_ids text[],
                                 stream_domains text[], event_ids uuid[], event_domains text[])
RETURNS TABLE (stream_id text, version int, event_id uuid, event_position bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    k int4;
BEGIN
    FOREACH k IN ARRAY lock_keys LOOP
        PERFORM pg_advisory_xact_lock(lock_class, k);
    END LOOP;
    RETURN QUERY
        SELECT s.sid, coalesce((SELECT max(e.version) FROM events e
                                 WHERE e.domain = s.dom AND e.stream_id = s.sid), 0), NULL::uuid, NULL::bigint
          FROM unnest(stream_ids, stream_domains) AS s(sid, dom);
    RETURN QUERY
        SELECT e.stream_id, e.version, e.event_id, e.position
          FROM unnest(event_ids, event_domains) AS i(eid, dom)
          JOIN events e ON e.domain = i.dom AND e.event_id = i.eid;
END
$fn$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION cr_lock_and_read")

"""The whole append of a batch in one statement (one round trip, committed on return).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# cr_append is a gate, not a decision maker. Under the batch's stream locks it inserts an
# append's events only when none of their ids is stored yet and the stream is at the
# expected version (-1 means any), and only when every other append of its group (an
# atomic multi-stream append) passes too. An append without events only checks its
# version, under a shared lock. For every append it returns the stream's version and
# any stored rows of its ids; Python's eventstore.appending classifies the rest
# (idempotent repeat, partial repeat, wrong version), so the rules live in one place.
#
# Why this is safe:
# - the locks are taken in the caller's (sorted) order before the reading statement, and
#   a VOLATILE plpgsql function takes a new snapshot per statement, so the reads see what
#   earlier lock holders committed;
# - advisory locks assign no transaction id: the xid is assigned by the INSERT, after the
#   locks, which keeps log order = stream order (see eventstore/postgres.py);
# - the caller puts at most one append per stream into a batch, so the groups in one call
#   are independent of each other;
# - positions are drawn in ORDER BY o, so a stream's versions and positions ascend together.
FUNCTION = """
CREATE FUNCTION cr_append(lock_class int4, lock_keys int4[], lock_shared bool[],
                          a_stream text[], a_expected int4[], a_group int4[],
                          e_append int4[], e_id uuid[], e_type text[], e_data jsonb[], e_meta jsonb[],
                          jitter_s float8)
RETURNS TABLE (append_no int4, current_version int4, event_id uuid, stored_stream text,
               stored_version int4, event_position bigint, inserted boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    i int4;
BEGIN
    FOR i IN 1 .. coalesce(array_length(lock_keys, 1), 0) LOOP
        IF lock_shared[i] THEN
            PERFORM pg_advisory_xact_lock_shared(lock_class, lock_keys[i]);
        ELSE
            PERFORM pg_advisory_xact_lock(lock_class, lock_keys[i]);
        END IF;
    END LOOP;
    RETURN QUERY
    WITH a AS (
        SELECT u.n::int4 AS no, u.s AS sid, u.x AS expected, u.g AS grp,
               split_part(split_part(u.s, ':', 1), '-', 2) AS dom, split_part(u.s, '-', 1) AS cat
          FROM unnest(a_stream, a_expected, a_group) WITH ORDINALITY AS u(s, x, g, n)
    ), cur AS (
        SELECT a.*, coalesce((SELECT max(e.version) FROM events e
                               WHERE e.domain = a.dom AND e.stream_id = a.sid), 0) AS v
          FROM a
    ), ev AS (
        SELECT u.an, u.eid, u.t, u.d, u.m, u.o
          FROM unnest(e_append, e_id, e_type, e_data, e_meta) WITH ORDINALITY AS u(an, eid, t, d, m, o)
    ), hits AS (
        SELECT ev.an, e.event_id AS eid, e.stream_id AS sid, e.version AS ver, e.position AS pos
          FROM ev JOIN cur ON cur.no = ev.an
          JOIN events e ON e.domain = cur.dom AND e.event_id = ev.eid
    ), gate AS (
        SELECT cur.no, cur.grp,
               (cur.expected = -1 OR cur.expected = cur.v)
               AND NOT EXISTS (SELECT 1 FROM hits WHERE hits.an = cur.no) AS pass
          FROM cur
    ), ok AS (
        SELECT cur.* FROM cur
         WHERE NOT EXISTS (SELECT 1 FROM gate WHERE gate.grp = cur.grp AND NOT gate.pass)
    ), ins AS (
        INSERT INTO events (domain, category, stream_id, version, event_id, type, data, metadata)
        SELECT ok.dom, ok.cat, ok.sid, ok.v + (row_number() OVER (PARTITION BY ev.an ORDER BY ev.o))::int4,
               ev.eid, ev.t, ev.d, ev.m
          FROM ev JOIN ok ON ok.no = ev.an
         ORDER BY ev.o
        RETURNING events.event_id AS eid, events.version AS ver, events.position AS pos
    )
    SELECT cur.no, cur.v, NULL::uuid, NULL::text, NULL::int4, NULL::bigint, false FROM cur
    UNION ALL
    SELECT hits.an::int4, NULL::int4, hits.eid, hits.sid, hits.ver, hits.pos, false FROM hits
    UNION ALL
    SELECT NULL::int4, NULL::int4, ins.eid, NULL::text, ins.ver, ins.pos, true FROM ins;
    IF jitter_s > 0 THEN
        PERFORM pg_sleep(random() * jitter_s);  -- tests only: hold the transaction open
    END IF;
END
$fn$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION cr_append")

"""cr_append keeps index lookups however large the log grows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Why: a session caches the function's plan. Planned while the table was small (a fresh
database, or a server started early in the day), the id lookup became a hash join over a
sequential scan of `events`, and every later batch then read the whole table: appends
slowed down in proportion to the log (measured: 19 ms of a 22 ms batch, at 51k events),
and nothing re-planned it where autovacuum is off. Now the id lookup is a LATERAL
probe (LIMIT 1 keeps the planner from flattening it back into a join), sequential scans
are disabled inside the function (nothing it reads should ever scan the table), and the
plan is generic from the first call (planning this statement cost more than running it).
The stream locks are taken by one statement instead of one statement per lock.
"""

import importlib

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The gate's rules and their reasons are unchanged; see migration 0002.
FUNCTION = """
CREATE OR REPLACE FUNCTION cr_append(lock_class int4, lock_keys int4[], lock_shared bool[],
                                     a_stream text[], a_expected int4[], a_group int4[],
                                     e_append int4[], e_id uuid[], e_type text[], e_data jsonb[], e_meta jsonb[],
                                     jitter_s float8)
RETURNS TABLE (append_no int4, current_version int4, event_id uuid, stored_stream text,
               stored_version int4, event_position bigint, inserted boolean)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    -- One statement takes every lock, in the array's (sorted) order: a function scan yields
    -- its rows in array order. (A PERFORM per lock cost a statement start-up each.)
    PERFORM CASE WHEN u.shared THEN pg_advisory_xact_lock_shared(lock_class, u.k)
                 ELSE pg_advisory_xact_lock(lock_class, u.k) END
       FROM unnest(lock_keys, lock_shared) AS u(k, shared);
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
        SELECT ev.an, h.eid, h.sid, h.ver, h.pos
          FROM ev JOIN cur ON cur.no = ev.an
         CROSS JOIN LATERAL (SELECT e.event_id, e.stream_id, e.version, e.position FROM events e
                              WHERE e.domain = cur.dom AND e.event_id = ev.eid LIMIT 1) AS h(eid, sid, ver, pos)
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
    previous = importlib.import_module("migrations.versions.0002_append_in_one_call")
    op.execute("DROP FUNCTION cr_append")
    op.execute(previous.FUNCTION)

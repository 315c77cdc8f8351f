"""Leadership: exactly one router decides per domain, and a zombie's writes fail.

The leader holds a session-level advisory lock on a connection of its own; a standby
tries to take it every `retry_s`. When the leader dies its session ends and the lock
is free at once. A leader that is paused rather than dead keeps its session until
`idle_session_timeout` ends it (the live leader pings more often than that), so the
standby takes over within a few seconds either way.

A lock alone cannot stop a paused leader that wakes up and writes, so each election
appends LeaderElected to `router-<domain>:leader`; its version is the epoch, and every
decision asserts that version in the same atomic append. Once a new leader is
elected, the old one's decisions fail.

The same connection holds every instance's lease: a second advisory lock, keyed by
the instance id, taken when the connection opens and held while the process lives.
The leader uses it to tell which instances are gone (`instance_alive`): an agent
whose desk was on an instance that died (kill -9, a lost machine) has nobody left to
record its disconnection, so the leader does.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable

import asyncpg

from eventstore import EventStoreError

log = logging.getLogger(__name__)

LEADER_LOCK_CLASS = 0x4C44  # "LD": the advisory lock's first key; the second is the domain's
INSTANCE_LOCK_CLASS = 0x494E  # "IN": an instance's lease; the second key is the instance id's


def leader_lock_key(domain: str) -> int:
    return zlib.crc32(f"leader:{domain}".encode()) - 0x8000_0000


def instance_lock_key(instance: str) -> int:
    return zlib.crc32(f"instance:{instance}".encode()) - 0x8000_0000


async def instance_alive(conn: asyncpg.Connection | asyncpg.Pool, instance: str) -> bool:
    """Whether the instance's process still holds its lease (its session is open).

    Why a try-lock and not a look at pg_locks: taking the lock is the one answer the server
    gives atomically. Held by the instance: it is alive. Free: its session ended, so it
    cannot be recording anything any more; the lock is given back at once in the same
    statement (a 32-bit key may in theory be shared with a live instance's; that only makes
    a dead instance look alive, which leaves its agents as they are, never the reverse)."""
    key = instance_lock_key(instance)
    gone = await conn.fetchval("SELECT CASE WHEN pg_try_advisory_lock($1, $2) THEN pg_advisory_unlock($1, $2) "
                               "ELSE false END", INSTANCE_LOCK_CLASS, key)
    return not gone


class _TakeOverFailed(Exception):
    """`on_elected` failed: the lock is given back (the session ends) and taken again later."""


class Leadership:
    """Holds the instance's lease and, when `contend`, takes the leader's lock when free."""

    def __init__(self, dsn: str, domain: str, *, instance: str = "", contend: bool = True, retry_s: float = 1.0,
                 ping_s: float = 1.0, idle_timeout_s: float = 4.0) -> None:
        self._dsn = dsn
        self._domain = domain
        self._instance = instance
        self._contend = contend
        self._retry_s = retry_s
        self._ping_s = ping_s
        self._idle_timeout_ms = int(idle_timeout_s * 1000)
        self._stopping = asyncio.Event()
        self.leased = asyncio.Event()  # set once the instance's lease is first held
        self.is_leader = False

    async def run(self, on_elected: Callable[[], Awaitable[None]], on_lost: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping.is_set():
            conn = await self._connect()
            if conn is None:
                await self._sleep(self._retry_s)
                continue
            try:
                await self._lead_while_held(conn, on_elected, on_lost)
            except _TakeOverFailed:
                # Why end the session: the lock must go back so that a standby may lead in the
                # meantime, and a session-level advisory lock taken again on the same session
                # only stacks. The pause keeps a failing take-over from spinning.
                conn.terminate()
                await self._sleep(self._retry_s)
            finally:
                if not conn.is_closed():
                    conn.terminate()

    async def _connect(self) -> asyncpg.Connection | None:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(self._dsn, timeout=5)
            # Ends this session (and frees the lock) if the process stops pinging: a paused leader.
            await conn.execute(f"SET idle_session_timeout = {self._idle_timeout_ms}")
            if self._instance:
                # Blocks only while this instance's previous session (a connection lost on our
                # side) is still open on the server: its idle timeout ends it within seconds.
                await conn.execute("SELECT pg_advisory_lock($1, $2)", INSTANCE_LOCK_CLASS,
                                   instance_lock_key(self._instance), timeout=3 * self._idle_timeout_ms / 1000)
            self.leased.set()
            return conn
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            log.warning("leadership: cannot reach the database (%s); retrying", exc)
            if conn is not None:
                conn.terminate()
            return None

    async def _lead_while_held(self, conn: asyncpg.Connection, on_elected: Callable[[], Awaitable[None]],
                               on_lost: Callable[[], Awaitable[None]]) -> None:
        key = leader_lock_key(self._domain)
        try:
            while not self._stopping.is_set():
                if not self.is_leader and self._contend:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LEADER_LOCK_CLASS, key):
                        self.is_leader = True
                        log.info("elected leader of routing domain %r", self._domain)
                        await self._take_office(on_elected)
                        continue
                    await self._sleep(self._retry_s)
                    await self._ping(conn)
                else:
                    await self._sleep(self._ping_s)
                    await self._ping(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
            log.warning("leadership connection lost (%s)", exc)
        finally:
            if self.is_leader:
                self.is_leader = False
                # A shutdown (stop() or the task cancelled) is routine; a lost lock is news.
                stepping_down = self._stopping.is_set() or _being_cancelled()
                log.log(logging.INFO if stepping_down else logging.WARNING,
                        "%s leader of routing domain %r", "stepped down as" if stepping_down else "no longer",
                        self._domain)
                await on_lost()

    async def _take_office(self, on_elected: Callable[[], Awaitable[None]]) -> None:
        """Run `on_elected`; if it fails, step down rather than end the contention.

        Why: the election's first write (the epoch) goes through the store's pool, which a
        database restart leaves with dead connections; the error used to end `run()`, so this
        instance never routed again, and its lease went with it (other instances then took its
        live desks for gone)."""
        try:
            await on_elected()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("could not take up routing for domain %r (%s: %s); stepping down and trying again in %.1f s",
                        self._domain, type(exc).__name__, exc, self._retry_s,
                        exc_info=not isinstance(exc, (OSError, asyncpg.PostgresError, EventStoreError)))
            raise _TakeOverFailed from exc

    async def _ping(self, conn: asyncpg.Connection) -> None:
        # With a bound: a connection that hangs (a network path gone silent) must not keep a
        # leader that the database has already let go (idle_session_timeout) deciding; the
        # timeout ends the lease here too, and the fenced epoch refuses what it still sends.
        await conn.fetchval("SELECT 1", timeout=max(1.0, self._idle_timeout_ms / 1000))

    async def _sleep(self, delay_s: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), delay_s)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self._stopping.set()


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0

"""The router service: folds the log into RouterState, and while leading, decides.

Every process (leader or standby) follows the whole log, so any instance can serve
agents' websockets and answer queries. Only the leader places contacts, makes
offers and runs timers. Every decision is appended atomically at the stream
versions it was based on, plus the leader epoch; a stale decision fails and is
simply decided again once the state has caught up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import orjson

from eventstore import (ANY, ConcurrencyError, DuplicateEventError, EventStoreError, LogCursor, NewEvent,
                        RecordedEvent, Snapshot, StreamAppend, Subscription)
from eventstore.errors import StoreUnavailableError
from eventstore.port import EventStore
from policies.engine import CompiledPolicy

from . import events as ev
from .commands import reactions
from .decide import Decision, Part, agents_in, contacts_in, next_offers, place
from .scheduler import TimerScheduler
from .snapshots import SnapshotSettings, Snapshottable, encode_aside
from .state import NEW, WAITING, RouterState
from .tasks import TaskBoard, supervised
from .timers import Timer, TimerSettings, fire, timers_for_agent, timers_for_contact

log = logging.getLogger(__name__)


ROUNDS_IN_FLIGHT = 2  # routing rounds whose decisions may be being stored at once
STALE_TIMER_RETRY_S = 0.1  # a timer whose decision was stale fires again this much later


@dataclass(frozen=True, slots=True)
class RouterSettings:
    domain: str = "default"
    instance: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    timers: TimerSettings = TimerSettings()
    round_interval_s: float = 1.0  # aging: priorities grow, so rounds also run on a beat
    lead: bool = True  # False: this instance never routes (e.g. an ingest-only or read-only instance)
    instance_check_s: float = 5.0  # how often the leader looks for instances gone with agents' desks


class RouterService:
    def __init__(self, store: EventStore, policy: Callable[[], CompiledPolicy], settings: RouterSettings,
                 *, clock: Callable[[], float] = time.time,
                 on_change: Callable[[set[str], set[str]], None] | None = None,
                 consumers: Sequence[Callable[[Sequence[RecordedEvent]], None]] = (),
                 snapshots: SnapshotSettings | None = None,
                 snapshot_parts: Mapping[str, Snapshottable] | None = None,
                 instance_alive: Callable[[str], Awaitable[bool]] | None = None,
                 board: TaskBoard | None = None) -> None:
        self.store = store
        self.board = board if board is not None else TaskBoard()
        self._instance_alive = instance_alive  # None: no sweep for instances gone (one process, tests)
        self.state = RouterState()
        self.settings = settings
        self._policy = policy
        self._clock = clock
        self.on_change = on_change
        self._consumers = list(consumers)  # other in-memory read models fed by this one follower
        self._leader_stream = f"router-{settings.domain}:leader"
        self._domain_mark = f"-{settings.domain}"  # the end of `<category>-<domain>` in stream ids
        self.epoch: int | None = None
        self._kick = asyncio.Event()
        self._subscription = Subscription(store, f"router-state:{settings.instance}", self._apply_batch,
                                          poll_interval_s=0.5, save_checkpoints=False)
        self._scheduler = TimerScheduler(self._fire)
        self._pending_contacts: set[str] = set()
        # Contacts and agents with a round's decisions being stored, and those rounds.
        self._busy_contacts: set[str] = set()
        self._busy_agents: set[str] = set()
        self._round_slots = asyncio.Semaphore(ROUNDS_IN_FLIGHT)
        self._landing: set[asyncio.Task[None]] = set()
        self._landed = asyncio.Event()  # set (and replaced) each time a round's decisions land
        self._commanding: dict[str, int] = {}  # agent id -> its desk commands being decided or stored
        self._last_recorded_s = 0.0
        self._applied_lag_s = 0.0
        self._last_forget_s = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self.decisions_ok = 0
        self.decisions_stale = 0
        self.decision_seconds: list[float] = []
        # Snapshots (router.snapshots): the state and the consumers' own, as of a log cursor.
        self._snapshots = snapshots
        self._codec = snapshots.codec() if snapshots is not None else None
        self._snapshot_name = (f"router-state:{settings.domain}:{self._codec.key_id}"
                               if self._codec is not None else "")
        self._snapshot_parts: dict[str, Snapshottable] = {"router": self.state, **(snapshot_parts or {})}
        self._cursor = LogCursor()  # of the last event this instance has applied
        self._snapshot_cursor = LogCursor()
        self._since_snapshot = 0
        self._snapshot_at = time.monotonic()
        self._snapshot_saving: asyncio.Task[None] | None = None
        self._snapshot_started = self._snapshot_held_ms = 0.0
        self.restored_from: LogCursor | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the state (from a snapshot and the log after it, or from the whole log),
        then follow the log."""
        started = time.monotonic()
        cursor = await self._restore_snapshot()
        if cursor is None:
            delivered = await self._subscription.catch_up_from_start()
        else:
            delivered = await self._subscription.catch_up_from(cursor)
        self._snapshot_at = time.monotonic()
        self._applied_lag_s = 0.0  # the rebuild read old events on purpose: lag counts from now on
        log.info("state rebuilt in %.2f s: %s and %d events of the log", time.monotonic() - started,
                 f"a snapshot at position {cursor.position}" if cursor is not None else "no snapshot", delivered)
        self._tasks.append(supervised(self._subscription.run_from_cursor(), "router-follow", self.board))

    async def stop(self) -> None:
        await self.on_lost()
        self._subscription.stop()
        for task in [*self._tasks, *self._landing]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._landing, return_exceptions=True)
        # A clean stop leaves a snapshot of where it got to: the next start replays nothing.
        if self._snapshot_saving is not None:
            await asyncio.gather(self._snapshot_saving, return_exceptions=True)
        if self._codec is not None and self._cursor != self._snapshot_cursor:
            await self._save_snapshot(self._take_snapshot())

    # -- snapshots --------------------------------------------------------------------------

    async def _restore_snapshot(self) -> LogCursor | None:
        if self._codec is None:
            return None
        snapshot = await self.store.load_snapshot(self._snapshot_name)
        if snapshot is None:
            return None
        try:
            saved = self._codec.decode(snapshot, scope=self._snapshot_name)
            if saved is None or set(saved) != set(self._snapshot_parts):
                return None
            for name, part in self._snapshot_parts.items():
                part.restore_state(saved[name])
        except Exception:  # noqa: BLE001  (a snapshot is a shortcut: never a reason not to start)
            log.exception("state snapshot could not be restored; replaying the whole log")
            for part in self._snapshot_parts.values():
                part.restore_state(type(part)().snapshot_state())  # type: ignore[call-arg]
            return None
        self.restored_from = self._cursor = self._snapshot_cursor = snapshot.cursor
        return snapshot.cursor

    def _snapshot_due(self) -> bool:
        settings = self._snapshots
        return (settings is not None and settings.every_s > 0 and self._since_snapshot > 0
                and time.monotonic() - self._snapshot_at >= settings.every_s
                and (self._snapshot_saving is None or self._snapshot_saving.done()))

    def _take_snapshot(self) -> Callable[[], Awaitable[Snapshot]]:
        """The state as of the last event applied. Called between two batches of the follower,
        so nothing of a later batch is in it. Finished contacts go first; the pickling runs in
        a forked process (`encode_aside`): the loop is held only for the fork."""
        assert self._codec is not None
        started = time.perf_counter()
        self._forget_finished(force=True)
        encoded = encode_aside(self._codec, self._snapshot_parts, self._cursor, scope=self._snapshot_name)
        self._snapshot_cursor, self._since_snapshot, self._snapshot_at = self._cursor, 0, time.monotonic()
        self._snapshot_started, self._snapshot_held_ms = started, (time.perf_counter() - started) * 1000
        return encoded

    async def _save_snapshot(self, encoded: Callable[[], Awaitable[Snapshot]]) -> None:
        started, cursor = self._snapshot_started, self._snapshot_cursor
        try:
            snapshot = await encoded()
            await self.store.save_snapshot(self._snapshot_name, snapshot)
        except (EventStoreError, RuntimeError) as exc:  # the next one will do; a restart replays a little more
            log.warning("state snapshot not saved: %s", exc)
            return
        log.info("state snapshot at position %d: %.1f MB in %.0f ms (the event loop held %.1f ms of it)",
                 cursor.position, len(snapshot.body) / 1e6, (time.perf_counter() - started) * 1000,
                 self._snapshot_held_ms)

    async def on_elected(self) -> None:
        result = await self.store.append(self._leader_stream, [NewEvent(ev.LEADER_ELECTED, {
            "instance": self.settings.instance, "at_s": self._clock()}, ev.metadata(
                actor=f"router:{self.settings.instance}", correlation_id=self._leader_stream, channel="router"))], ANY)
        self.epoch = result.last_version
        self._scheduler = TimerScheduler(self._fire)
        self._scheduler.start()
        for contact in list(self.state.contacts.values()):  # re-arm every pending timer from the state
            self._scheduler.reconcile(contact.contact_id, timers_for_contact(contact))
        for agent in list(self.state.agents.values()):
            self._scheduler.reconcile(agent.agent_id, timers_for_agent(agent, self.settings.timers))
        self._tasks.append(supervised(self._decide_loop(), "router-decide", self.board))
        if self._instance_alive is not None:
            self._tasks.append(supervised(self._sweep_gone_instances(), "router-instances", self.board))
        log.info("routing as leader, epoch %d, %d timers armed", self.epoch, self._scheduler.armed)

    async def on_lost(self) -> None:
        self.epoch = None
        self._scheduler.shutdown()
        self._kick.set()

    def current_policy(self) -> CompiledPolicy:
        """The routing policy in force now (the one the next round decides with)."""
        return self._policy()

    @property
    def is_leader(self) -> bool:
        return self.epoch is not None

    # -- following the log ------------------------------------------------------------------

    def _forget_finished(self, *, force: bool = False) -> None:
        """Drop finished contacts from memory every minute (the log keeps them), except those
        with timers still to come (a callback, a follow-up deadline) or an agent holding them."""
        now = time.monotonic()
        if now - self._last_forget_s < 60.0 and not force:
            return
        self._last_forget_s = now
        # Why offers too: a customer who leaves while offered is finished before the offer's
        # revoke lands; forgotten meanwhile, the revoke (and the offer's expiry) would find no
        # contact, and the offer would hold the agent's capacity for ever.
        held = {cid for agent in self.state.agents.values() for cid in agent.contacts}
        held.update(offer.contact_id for offer in self.state.offers.values())
        forgotten = self.state.forget_done(lambda c: c.contact_id in held or bool(timers_for_contact(c)))
        if forgotten:
            log.debug("forgot %d finished contacts", forgotten)

    async def sync(self, timeout_s: float = 2.0) -> bool:
        """Read your writes across processes: wait until this instance has applied every event
        committed before the call (e.g. an agent registered, or a desk token issued, through
        another worker on the same port). False when that took longer than `timeout_s`."""
        head = (await self.store.log_head()).as_tuple()
        deadline = time.monotonic() + timeout_s
        while self._subscription.cursor.as_tuple() < head:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)  # the follower is woken by the commit's notification
        return True

    def event_lag_s(self) -> float:
        """How late the newest applied event reached this instance's state (its commit to its
        application). It stays put while the log is quiet: a caught-up instance is not late."""
        return self._applied_lag_s

    def seconds_since_last_event(self) -> float:
        """Now minus the newest applied event's time: grows with a quiet log, or a stuck follower."""
        return max(0.0, time.time() - self._last_recorded_s) if self._last_recorded_s else 0.0

    async def _apply_batch(self, events: Sequence[RecordedEvent]) -> None:
        if not events:
            return
        last = events[-1]
        self._last_recorded_s = last.recorded_at.timestamp()
        self._applied_lag_s = max(0.0, time.time() - self._last_recorded_s)
        received = len(events)
        # The log holds every routing domain (stream ids are `<category>-<domain>:<key>`);
        # this instance routes one, and its read models (customers, the ingest memo) are
        # that domain's too. Another domain's contact is not ours to queue or offer.
        mark = self._domain_mark
        events = [e for e in events if e.stream_id.partition(":")[0].endswith(mark)]
        for consume in self._consumers:
            consume(events)
        self._forget_finished()
        changed = False
        for event in events:
            changed |= self.state.apply(event)
        # Why only now: a snapshot (and stop() saves one) holds the state with this cursor. A
        # batch that failed half-way must not leave a cursor past what the state holds.
        self._cursor = last.cursor
        self._since_snapshot += received
        if changed:
            self._after_change()
        if self._snapshot_due():
            self._snapshot_saving = asyncio.create_task(self._save_snapshot(self._take_snapshot()),
                                                        name="router-snapshot")

    def notify_changed(self) -> None:
        """Something outside the log subscription changed the state (e.g. an admin request)."""
        self._after_change()

    def _after_change(self) -> None:
        contacts, agents = self.state.touched_contacts, self.state.touched_agents
        self.state.touched_contacts, self.state.touched_agents = set(), set()
        if self.is_leader:
            for contact_id in contacts:
                contact = self.state.contacts.get(contact_id)
                self._scheduler.reconcile(contact_id, timers_for_contact(contact) if contact else [])
            for agent_id in agents:
                agent = self.state.agents.get(agent_id)
                self._scheduler.reconcile(agent_id, timers_for_agent(agent, self.settings.timers) if agent else [])
            self._pending_contacts.update(contacts)
            self._kick.set()
        if self.on_change is not None:
            self.on_change(contacts, agents)

    # -- deciding (leader) ------------------------------------------------------------------

    async def _decide_loop(self) -> None:
        self._pending_contacts = set(self.state.contacts)
        while self.is_leader:
            if not self._kick.is_set():  # under load it usually is: skip wait_for's timer task
                try:
                    await asyncio.wait_for(self._kick.wait(), self.settings.round_interval_s)
                except TimeoutError:
                    pass
            self._kick.clear()
            if not self.is_leader:
                return
            # Rounds overlap: the next one is decided while the last one's appends are being
            # stored (a round trip of the database), at most ROUNDS_IN_FLIGHT at once. Waiting
            # for each round to land made the round trip, not the CPU, the limit on contacts/s.
            await self._round_slots.acquire()
            try:
                decisions = self._round()
            except Exception:
                self._round_slots.release()
                log.exception("routing round failed; the next one starts from the log's state")
                await asyncio.sleep(0.5)
                continue
            if not decisions:  # nothing to store: no landing, and nothing to wake the loop for
                self._round_slots.release()
                continue
            landing = asyncio.create_task(self._land(decisions), name="router-land")
            self._landing.add(landing)
            landing.add_done_callback(self._landing.discard)

    def _round(self) -> list[Decision]:
        """Decide one round on the state as it is (pure decisions, no I/O). Contacts and agents
        whose decisions from an earlier round are still being stored sit this one out: the
        state does not show those decisions yet."""
        now_s = self._clock()
        started = time.perf_counter()
        touched, self._pending_contacts = self._pending_contacts, set()
        placements: list[Decision] = []
        reacting: list[Decision] = []
        policy = self._policy()
        for contact_id in touched:
            contact = self.state.contacts.get(contact_id)
            if contact is None:
                continue
            if contact_id in self._busy_contacts:
                self._pending_contacts.add(contact_id)  # decided again once that decision lands
                continue
            if contact.facts is not None and (contact.status == NEW
                                              or (contact.replan and contact.status == WAITING)):
                placements.append(place(self.state, contact, policy, now_s))
            reacting.extend(reactions(self.state, contact, now_s))
        # Agents a reaction frees (or whose offer it withdraws) are busy until it lands, so
        # this round's offers leave them alone; the next round sees them free.
        reacting_agents = {a for d in reacting for a in agents_in(d)}
        # A contact placed now and offered now goes out as one atomic append (placement then
        # offer on its stream); placements without an offer go alone. Every part names the
        # version it was decided on, so nothing can overfill an agent, whatever lands first.
        offers = next_offers(self.state, now_s, placing=placements, busy_contacts=self._busy_contacts,
                             busy_agents=self._busy_agents | reacting_agents | self._commanding.keys())
        offered_now = {cid for decision in offers for cid in contacts_in(decision)}
        alone = [p for p in placements if p.contact_id not in offered_now]
        self.decision_seconds.append(time.perf_counter() - started)
        del self.decision_seconds[:-1000]
        decisions = [*reacting, *alone, *offers]
        for decision in decisions:
            self._busy_contacts.update(contacts_in(decision))
            self._busy_agents.update(agents_in(decision))
        return decisions

    async def _land(self, decisions: Sequence[Decision]) -> None:
        """Store one round's decisions, then free their contacts and agents for later rounds."""
        try:
            outcomes = await asyncio.gather(*(self.submit(d) for d in decisions), return_exceptions=True)
            failed = False
            for decision, outcome in zip(decisions, outcomes):
                if isinstance(outcome, BaseException):
                    failed = True
                    level = logging.WARNING if isinstance(outcome, StoreUnavailableError) else logging.ERROR
                    log.log(level, "a %s decision could not be stored (%s); it is decided again",
                            decision.kind, outcome, exc_info=level == logging.ERROR)
                    self._pending_contacts.update(contacts_in(decision))
            if failed:
                await asyncio.sleep(1.0)  # e.g. the database is away: retry at a walk, not in a spin
        finally:
            for decision in decisions:
                self._busy_contacts.difference_update(contacts_in(decision))
                self._busy_agents.difference_update(agents_in(decision))
            self._round_slots.release()
            self._kick.set()  # contacts that sat this round out (busy) are pending: decide them
            self._landed.set()
            self._landed = asyncio.Event()

    async def _fire(self, timer: Timer) -> None:
        if not self.is_leader:
            return
        try:
            policy = self._policy()
            for decision in fire(self.state, timer, self._clock(), self.settings.timers, policy.queues,
                                 policy.home_language, policy=policy):
                if not await self.submit(decision):
                    # Stale: a stream it was decided on moved, often not the timer's own (an
                    # offer's expiry also writes the agent's stream, which a desk command may
                    # have just advanced). A change to another ref does not re-arm this timer,
                    # and the scheduler forgot it when it fired: without this the offer would
                    # stay pending for good. Fire again shortly on the fresher state; `fire`
                    # decides nothing if by then the timer no longer applies.
                    self._scheduler.rearm(replace(timer, due_s=self._clock() + STALE_TIMER_RETRY_S))
                    return
        except StoreUnavailableError as exc:
            log.warning("timer %s could not fire (%s); re-armed", timer.key, exc.message)
            self._scheduler.rearm(replace(timer, due_s=self._clock() + 1.0))

    async def _sweep_gone_instances(self) -> None:
        """Record the disconnection of desks held by server instances that are gone.

        Why the leader does it: a desk's instance records its closing, but an instance killed
        outright (kill -9, a lost machine) records nothing, and its agents would stay
        "connected" on record, offered contacts nobody sees. Each instance holds a lease
        (an advisory lock, `router.leader`) while its process lives; when the lease is free,
        the leader records AgentDisconnected for that instance's agents, and the grace period
        runs as for a dropped desk: a desk that comes back elsewhere in time resumes."""
        assert self._instance_alive is not None
        while self.is_leader:
            await asyncio.sleep(self.settings.instance_check_s)
            await self.disconnect_gone_instances()

    async def disconnect_gone_instances(self) -> int:
        """One sweep (see `_sweep_gone_instances`); the number of agents disconnected."""
        if self._instance_alive is None:
            return 0
        held: dict[str, list[str]] = {}
        for agent in self.state.agents.values():
            if agent.connected and agent.desk_instance not in (None, self.settings.instance):
                held.setdefault(agent.desk_instance, []).append(agent.agent_id)  # type: ignore[arg-type]
        done = 0
        for instance, agent_ids in held.items():
            try:
                if await self._instance_alive(instance):
                    continue
            except Exception as exc:  # noqa: BLE001  (asked again at the next sweep)
                log.warning("could not tell whether server instance %s is alive (%s)", instance, exc)
                continue
            log.warning("server instance %s is gone; recording its %d agents' desks as disconnected",
                        instance, len(agent_ids))
            for agent_id in agent_ids:
                try:
                    if await self.record_presence(agent_id, ev.AGENT_DISCONNECTED, instance=instance,
                                                  reason="the server instance holding the desk is gone"):
                        done += 1
                except EventStoreError as exc:
                    log.warning("the disconnection of %s could not be recorded (%s); next sweep", agent_id, exc)
        return done

    async def record_presence(self, agent_id: str, type_: str, *, instance: str | None = None,
                              reason: str | None = None) -> bool:
        """Record a desk's AgentConnected or AgentDisconnected (this instance's unless
        `instance` says otherwise). False when the agent's state no longer calls for it (a
        sweep's disconnection of a desk that came back meanwhile) or the agent's stream kept
        moving under five tries; EventStoreError when the database cannot store it."""
        data: dict[str, object] = {"agent_id": agent_id, "at_s": time.time(),
                                   "instance": instance or self.settings.instance}
        if reason:
            data["reason"] = reason

        def decide() -> Decision:
            agent = self.state.agents[agent_id]
            return Decision(type_, (Part(agent.stream_id, agent.version, ((type_, data),)),), agent_id=agent_id)

        for _ in range(5):  # the agent's stream may move under us (another instance): re-read and retry
            agent = self.state.agents.get(agent_id)
            if agent is None:
                return False
            if instance is not None and (not agent.connected or agent.desk_instance != instance):
                return False  # the sweep's view is out of date: the desk moved or closed meanwhile
            if await self.command(agent_id, decide):
                return True
            await asyncio.sleep(0.05)
        log.warning("could not record %s for %s", type_, agent_id)
        return False

    # -- desk commands ----------------------------------------------------------------------

    async def command(self, agent_id: str, decide: Callable[[], Decision], *, wait_s: float = 2.0) -> bool:
        """Decide and store an agent's own command (accept, complete, wrap-up done...) without
        racing this instance's routing rounds for the agent's stream.

        Why: a command and an offer to the same agent both append to the agent's stream at the
        version they were decided on, so when they overlap one of them is refused and decided
        again (measured: 3 in 10 offer decisions under load, each costing a round trip and a
        retry; refused commands waited 20 ms and more to retry). So the command first waits
        (at most `wait_s`) for rounds that are storing decisions for this agent, then is
        decided on the state they leave, and rounds leave the agent alone until it is stored.
        The stream versions still decide every race this cannot see (another instance's desk).
        `decide` may raise; False when the command was stale all the same."""
        self._commanding[agent_id] = self._commanding.get(agent_id, 0) + 1
        try:
            deadline = time.monotonic() + wait_s
            while agent_id in self._busy_agents and time.monotonic() < deadline:
                landed = self._landed
                try:
                    await asyncio.wait_for(landed.wait(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    break
            return await self.submit(decide(), fenced=False, actor=f"agent:{agent_id}")
        finally:
            left = self._commanding.pop(agent_id) - 1
            if left:
                self._commanding[agent_id] = left
            else:
                self._kick.set()  # rounds left this agent alone meanwhile: it may take an offer now

    # -- appending --------------------------------------------------------------------------

    async def submit(self, decision: Decision, *, fenced: bool = True, actor: str | None = None) -> bool:
        """Append a decision atomically at its versions (and the leader epoch when fenced);
        apply it at once on success. False when it was stale. `actor`: who asked (an agent's
        desk command); the router itself when None."""
        now = datetime.now(timezone.utc)
        meta = self._metadata(decision, fenced, actor, now)
        appends = [StreamAppend(p.stream_id, [self._new_event(p.stream_id, p.expected_version + i, t, d, meta(p))
                                              for i, (t, d) in enumerate(p.events)], p.expected_version)
                   for p in decision.parts]
        if fenced and self.epoch is not None:
            appends.append(StreamAppend(self._leader_stream, [], self.epoch))
        try:
            results = await self.store.append_many(appends)
        except (ConcurrencyError, DuplicateEventError) as exc:
            self.decisions_stale += 1
            log.debug("decision %s was stale: %s", decision.kind, exc)
            # Decide every contact it touched again on the fresh state (a merged decision may
            # hold the placements of several).
            self._pending_contacts.update(contacts_in(decision))
            if decision.contact_id is not None:
                self._pending_contacts.add(decision.contact_id)
            if isinstance(exc, ConcurrencyError) and exc.stream_id == self._leader_stream:
                log.warning("a newer leader was elected; this instance stops deciding")
                await self.on_lost()
            self._kick.set()
            return False
        self.decisions_ok += 1
        for part, append, result in zip(decision.parts, appends, results):
            for event, version, position in zip(append.events, result.versions, result.positions):
                self.state.apply(RecordedEvent(event.event_id, part.stream_id, version, position, 0,
                                               event.type, dict(event.data), dict(event.metadata), now))
        self._after_change()
        return True

    def _metadata(self, decision: Decision, fenced: bool, actor: str | None,
                  now: datetime) -> Callable[[Part], dict[str, object]]:
        """Each part's metadata: the decision's channel, actor and time, and as its cause the
        last event of the stream it was decided on (the state the decision answers)."""
        contact = self.state.contacts.get(decision.contact_id) if decision.contact_id else None
        if contact is not None and contact.facts is not None:
            channel = contact.facts.channel.value
        else:
            channel = "router" if fenced else "desk"
        common = ev.metadata(actor=actor or f"router:{self.settings.instance}", channel=channel,
                             correlation_id=decision.contact_id or decision.agent_id or "",
                             received_at=now.isoformat(), epoch=self.epoch)

        def for_part(part: Part) -> dict[str, object]:
            category, _, rest = part.stream_id.partition("-")
            key = rest.partition(":")[2]
            entity = (self.state.contacts if category == "contact" else self.state.agents).get(key)
            cause = entity.last_event_id if entity is not None else None
            return {**common, "causation_id": str(cause) if cause is not None else None}

        return for_part

    def _new_event(self, stream_id: str, version: int, type_: str, data: dict[str, object],
                   metadata: dict[str, object] | None = None) -> NewEvent:
        # The id is derived from what is decided: a retried identical decision is a repeat,
        # a different decision at the same version is a conflict. One SHA-256 over where,
        # what and the data (canonical JSON), cut to a version-5-shaped UUID: this runs for
        # every event the router writes, and uuid5 of a hex digest cost twice as much.
        digest = hashlib.sha256(b"%s:%d:%s:%s" % (stream_id.encode(), version, type_.encode(),
                                                  orjson.dumps(data, option=orjson.OPT_SORT_KEYS))).digest()
        event_id = uuid.UUID(bytes=digest[:16], version=5)  # the metadata (who, when) is no part of it
        return NewEvent(type_, data, metadata or {}, event_id=event_id)


__all__ = ["RouterService", "RouterSettings", "WAITING"]

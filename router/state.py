"""The router's state: a fold of the log, with the indexes routing decisions need.

Pure: `RouterState.apply(event)` reads nothing but the event; it never looks at the
clock, the database or a socket. Events are applied once per stream version, so the
router may apply its own decisions as soon as they are stored and skip them when the
subscription delivers them again.

The indexes (agents available per channel in the order they became free, agents per
skill and per language, and how many free agents per channel have each skill at each
level) let a decision look at a handful of agents instead of all.
"""

from __future__ import annotations

from uuid import UUID

import bisect
import copy
from collections import Counter, deque
from operator import itemgetter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from channels.events import facts_from_data
from eventstore import RecordedEvent
from policies.plan import Requirement, RequirementKind, RoutingPlan
from policies.vocabulary import AgentProfile, AgentSnapshot, Channel, ContactFacts, Intent, Presence

from . import events as ev
from .plancodec import plan_from_json

WAITING, OFFERED, ASSIGNED, DONE, UNROUTABLE, NEW = "waiting", "offered", "assigned", "done", "unroutable", "new"


@dataclass(slots=True)
class Offer:
    offer_id: str
    contact_id: str
    agent_id: str
    channel: Channel
    offered_at_s: float
    expires_at_s: float
    # The agent's profile the offer was decided on (profiles are replaced, never changed):
    # a different one now means an admin changed the agent while the offer was pending.
    profile: AgentProfile | None = None


@dataclass(slots=True)
class ContactState:
    contact_id: str
    stream_id: str
    version: int = 0
    facts: ContactFacts | None = None
    status: str = NEW
    plan: RoutingPlan | None = None
    queued_at_s: float = 0.0  # first queued: priority ages from here
    # When the current wait began: queued, or again after a transfer or at a callback's time.
    # The SLA clock, the answer's waited_s and the longest wait count from here, so that a
    # transferred contact is not a breach before it waits, nor its first talk time a wait.
    wait_from_s: float = 0.0
    queue_id: str | None = None
    requirements: tuple[Requirement, ...] | None = None  # set by a transfer: replaces the plan's
    priority_boost: float = 0.0
    # The current queue's SLA target and wrap-up when a transfer or an escalation moved the
    # contact to another queue (None: the plan's queue's, see `answer_within_s`).
    sla_target_s: float | None = None
    wrapup_s: float | None = None
    # A transfer to a queue (or an overflow from one) moves the contact off its plan's
    # timeline: that queue's own max wait and overflow then apply, counted from the move.
    max_wait_s: float | None = None
    overflow_to: str | None = None
    moved_at_s: float = 0.0
    steps_done: int = 0
    offer: Offer | None = None
    tried: dict[str, str] = field(default_factory=dict)  # agent -> rejected, expired, revoked or passed
    agent_id: str | None = None
    sla_breached: bool = False
    replan: bool = False  # what the contact is about changed while it waited: place it again
    callback_at_s: float | None = None  # a callback promised to the customer
    callback_owed: bool = False  # promised and not yet due (a later step may promise another)
    callback_due: bool = False  # a promised callback fell due: the contact waits as one
    callback_within_hours: bool = True  # the slot is in business hours too (a step may say not)
    deadlines_done: set[str] = field(default_factory=set)
    end_reason: str | None = None
    last_event_id: UUID | None = None  # the causation of what the router decides next about it


def answer_within_s(contact: ContactState) -> float:
    """The SLA target of the queue the contact is in now (its plan's until it is moved)."""
    if contact.sla_target_s is not None:
        return contact.sla_target_s
    return contact.plan.answer_within_s if contact.plan is not None else 0.0


def _queue_targets(contact: ContactState, data: Data) -> None:
    """A move to another queue states that queue's SLA target and wrap-up (older events did not)."""
    if data.get("answer_within_s") is not None:
        contact.sla_target_s = float(data["answer_within_s"])
    if data.get("wrapup_s") is not None:
        contact.wrapup_s = float(data["wrapup_s"])


@dataclass(slots=True)
class AgentState:
    agent_id: str
    stream_id: str
    version: int = 0
    profile: AgentProfile | None = None
    presence: Presence = Presence.OFFLINE
    connected: bool = False
    disconnected_at_s: float | None = None
    desk_instance: str | None = None  # the server instance holding the agent's desk (when connected)
    contacts: dict[str, Channel] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)
    wrapup_until_s: float | None = None
    idle_since_s: float = 0.0
    indexed_idle_s: float = -1.0  # idle_since_s when the agent took its place in the index
    indexed_skills: Mapping[str, int] = field(default_factory=dict)  # as counted in RouterState.free_levels
    missed_in_row: int = 0
    token_sha256: str | None = None
    snapshot: AgentSnapshot | None = None
    last_event_id: UUID | None = None  # the causation of what the router decides next about it


class Recent(dict[str, str]):
    """A dict that keeps only its newest `limit` entries."""

    def __init__(self, limit: int = 20_000) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: str, value: str) -> None:
        self[key] = value
        if len(self) > self.limit:
            del self[next(iter(self))]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished wait, for the live figures: answered (assigned) or abandoned."""

    at_s: float
    queue_id: str
    answered: bool
    waited_s: float
    within_sla: bool


SHORT_ABANDON_S = 5.0  # a caller who hangs up sooner was never really waiting: not an abandon
RECENT_S = 20 * 60  # raw outcomes kept: the 15-minute window, and a margin for late events
BUCKET_S = 15 * 60  # tallies per quarter hour: every time zone's midnight falls on one today
KEEP_BUCKETS = 2 * 96 + 4  # two days of them, so "today" is whole in any time zone


@dataclass(slots=True)
class Tally:
    """Finished waits counted: answered (and within the SLA), abandoned, short abandons."""

    answered: int = 0
    within_sla: int = 0
    abandoned: int = 0
    short_abandons: int = 0
    wait_total_s: float = 0.0

    def add(self, outcome: Outcome) -> None:
        if outcome.answered:
            self.answered += 1
            self.within_sla += outcome.within_sla
            self.wait_total_s += outcome.waited_s
        elif outcome.waited_s < SHORT_ABANDON_S:
            self.short_abandons += 1
        else:
            self.abandoned += 1

    def merge(self, other: Tally) -> None:
        self.answered += other.answered
        self.within_sla += other.within_sla
        self.abandoned += other.abandoned
        self.short_abandons += other.short_abandons
        self.wait_total_s += other.wait_total_s


class RouterState:
    def __init__(self) -> None:
        self.contacts: dict[str, ContactState] = {}
        self.agents: dict[str, AgentState] = {}
        self.offers: dict[str, Offer] = {}
        self.available: dict[Channel, dict[str, None]] = {ch: {} for ch in Channel}
        self._idle_order: dict[Channel, list[tuple[float, str]]] = {ch: [] for ch in Channel}  # `available`, sorted
        # channel -> skill -> level -> how many agents in available[channel] have that level:
        # the best skill level a free agent could bring, without looking at the agents.
        self.free_levels: dict[Channel, dict[str, Counter[int]]] = {ch: {} for ch in Channel}
        self.skill_index: dict[str, set[str]] = {}
        self.skill_levels: dict[str, Counter[int]] = {}  # skill -> level -> agents on the roster
        self.language_index: dict[str, set[str]] = {}
        self.tokens: dict[str, str] = {}
        # The live figures: the last RECENT_S of outcomes as they were, and tallies per
        # (quarter hour, queue) for the day. Both are bounded by time, not by count: a count
        # (200,000 before) cut "today" short on a busy day, and every figure request read it all.
        self.outcomes: deque[Outcome] = deque()
        self.tallies: dict[tuple[int, str], Tally] = {}
        self._newest_bucket = 0
        # What became of recent offers, for desks told about them (bounded: old ones drop off).
        self.offer_reasons: dict[str, list[str]] = {}
        self.closed_offers: Recent = Recent()
        self.assigned_offers: Recent = Recent()
        self.touched_contacts: set[str] = set()
        self.touched_agents: set[str] = set()
        self.applying: RecordedEvent | None = None  # the event a handler is folding in, for its time
        # Contacts waiting with a plan: a routing round looks at these, not at every contact
        # still in memory (finished ones stay until forgotten).
        self.waiting_ids: dict[str, None] = {}

    def record(self, outcome: Outcome) -> None:
        """Count a finished wait (from an event: replaying the log gives the same figures)."""
        self.outcomes.append(outcome)
        cutoff = outcome.at_s - RECENT_S
        while self.outcomes[0].at_s < cutoff:
            self.outcomes.popleft()
        bucket = int(outcome.at_s // BUCKET_S)
        if bucket > self._newest_bucket:
            self._newest_bucket = bucket
            oldest = bucket - KEEP_BUCKETS
            for key in [k for k in self.tallies if k[0] < oldest]:
                del self.tallies[key]
        if bucket >= self._newest_bucket - KEEP_BUCKETS:
            self.tallies.setdefault((bucket, outcome.queue_id), Tally()).add(outcome)

    # -- snapshots (router.snapshots) -----------------------------------------------------

    _UNSAVED = frozenset({"touched_contacts", "touched_agents",  # what a round has yet to look at
                          "applying"})

    def snapshot_state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in self._UNSAVED}

    def restore_state(self, saved: dict[str, Any]) -> None:
        # Restored in place: the desks' hub and the agent directory hold this object.
        fresh = RouterState()
        vars(self).update({**vars(fresh), **saved})

    # -- applying events ------------------------------------------------------------------

    def apply(self, event: RecordedEvent) -> bool:
        """Fold one event in; False when it was applied already (or is not the router's).

        Each stream's events are applied once, in version order: the router applies its
        own decisions as soon as they are stored, and skips them when the subscription
        brings them again."""
        category, _, rest = event.stream_id.partition("-")
        key = rest.split(":", 1)[1]
        if category == "contact":
            contact = self.contacts.get(key)
            if contact is None:
                if event.version > 1:
                    # A late event of a contact already finished and forgotten (a snapshot
                    # forgets them first): a new entry would be a phantom waiting contact.
                    return False
                contact = self.contacts[key] = ContactState(key, event.stream_id)
            return self._fold(contact, event, _CONTACT_HANDLERS, lambda _: self._contact_changed(contact))
        if category == "agent":
            agent = self.agents.get(key) or self.agents.setdefault(key, AgentState(key, event.stream_id))
            return self._fold(agent, event, _AGENT_HANDLERS, lambda _: self.refresh(agent))
        return False  # other categories (router, policy, customer) are not the router state's

    def _fold(self, entity: Any, event: RecordedEvent, handlers: Mapping[str, Any], after: Callable[[str], None]) -> bool:
        if event.version <= entity.version:
            return False
        entity.version = event.version
        entity.last_event_id = event.event_id
        handler = handlers.get(event.type)
        if handler is not None:
            self.applying = event
            try:
                handler(self, entity, event.data)
            finally:
                self.applying = None
            after(event.stream_id.split(":", 1)[1])
        return True

    # -- agents: snapshot and indexes -----------------------------------------------------

    def refresh(self, agent: AgentState) -> None:
        """Rebuild the agent's snapshot and its place in the availability index."""
        self.touched_agents.add(agent.agent_id)
        if agent.profile is None:
            return
        load: dict[Channel, int] = {}
        for channel in agent.contacts.values():
            load[channel] = load.get(channel, 0) + 1
        agent.snapshot = AgentSnapshot(
            profile=agent.profile, presence=agent.presence, load=load, pending_offers=len(agent.offers),
            idle_since_s=agent.idle_since_s, in_wrapup=agent.wrapup_until_s is not None,
            missed_offers=agent.missed_in_row,
        )
        if agent.indexed_skills is not agent.profile.skills:
            self._recount(agent)
        moved = agent.idle_since_s != agent.indexed_idle_s
        for channel in Channel:
            index = self.available[channel]
            # A dropped desk (inside its grace period) gets no new offers: nobody would see them.
            if not agent.connected or not self._has_room(agent.snapshot, channel):
                self._leave(channel, agent)
                continue
            if moved:
                self._leave(channel, agent)
            if agent.agent_id not in index:
                self._insert(channel, agent)
                self._count(channel, agent.indexed_skills, 1)
        agent.indexed_idle_s = agent.idle_since_s

    def _leave(self, channel: Channel, agent: AgentState) -> None:
        index = self.available[channel]
        if agent.agent_id in index:
            del index[agent.agent_id]
            order = self._idle_order[channel]
            at = bisect.bisect_left(order, (agent.indexed_idle_s, agent.agent_id))
            if at < len(order) and order[at][1] == agent.agent_id:
                del order[at]
            else:  # not where its key says (cannot happen while every change goes through refresh)
                order[:] = [entry for entry in order if entry[1] != agent.agent_id]
            self._count(channel, agent.indexed_skills, -1)

    def _recount(self, agent: AgentState) -> None:
        """The agent's skills changed: move its counts from the old levels to the new."""
        assert agent.profile is not None
        for channel, index in self.available.items():
            if agent.agent_id in index:
                self._count(channel, agent.indexed_skills, -1)
                self._count(channel, agent.profile.skills, 1)
        agent.indexed_skills = agent.profile.skills

    def _count(self, channel: Channel, skills: Mapping[str, int], delta: int) -> None:
        levels = self.free_levels[channel]
        for skill, level in skills.items():
            if level > 0:
                counts = levels.get(skill) or levels.setdefault(skill, Counter())
                counts[level] += delta
                if counts[level] <= 0:
                    del counts[level]

    def best_free_level(self, channel: Channel, skill: str) -> int:
        """The highest level of `skill` among agents free on `channel` (0: none has it)."""
        counts = self.free_levels[channel].get(skill)
        return max(counts) if counts else 0

    def _insert(self, channel: Channel, agent: AgentState) -> None:
        """Keep the index in idle order, so the longest idle agent is always first.

        A newcomer usually belongs at the end. One that does not is common too: an agent
        with room again on a channel (a chat of three ended) keeps the idle time it had, older
        than the others'. The sorted `_idle_order` finds its place (bisect, in C), and the
        index is rebuilt from it in C: re-sorting the index with a Python key per agent was
        3% of the server's CPU with 300 agents, and grows with n log n."""
        index, order = self.available[channel], self._idle_order[channel]
        key = (agent.idle_since_s, agent.agent_id)
        if not order or order[-1] < key:
            order.append(key)
            index[agent.agent_id] = None
            return
        bisect.insort(order, key)
        index.clear()
        index.update(dict.fromkeys(map(itemgetter(1), order)))

    @staticmethod
    def _has_room(snap: AgentSnapshot, channel: Channel) -> bool:
        capacity = snap.profile.channels.get(channel, 0)
        if capacity <= 0 or snap.presence is not Presence.AVAILABLE or snap.in_wrapup:
            return False
        used = snap.load.get(channel, 0) + snap.pending_offers
        return used < capacity and snap.total_load < snap.profile.total_capacity

    def index_profile(self, agent: AgentState, old: AgentProfile | None) -> None:
        if old is not None:
            for skill, level in old.skills.items():
                self.skill_index.get(skill, set()).discard(agent.agent_id)
                self._roster_count(skill, level, -1)
            for language in old.languages:
                self.language_index.get(language, set()).discard(agent.agent_id)
        assert agent.profile is not None
        for skill, level in agent.profile.skills.items():
            if level > 0:
                self.skill_index.setdefault(skill, set()).add(agent.agent_id)
                self._roster_count(skill, level, 1)
        for language in agent.profile.languages:
            self.language_index.setdefault(language, set()).add(agent.agent_id)

    def _roster_count(self, skill: str, level: int, delta: int) -> None:
        if level > 0:
            counts = self.skill_levels.setdefault(skill, Counter())
            counts[level] += delta
            if counts[level] <= 0:
                del counts[level]

    def best_roster_level(self, skill: str) -> int:
        """The highest level of `skill` anyone on the roster has, whatever they are doing (0: none)."""
        counts = self.skill_levels.get(skill)
        return max(counts) if counts else 0

    def _contact_changed(self, contact: ContactState) -> None:
        self.touched_contacts.add(contact.contact_id)
        if contact.status == WAITING and contact.plan is not None:
            self.waiting_ids[contact.contact_id] = None
        else:
            self.waiting_ids.pop(contact.contact_id, None)

    def waiting(self) -> list[ContactState]:
        return [self.contacts[k] for k in self.waiting_ids]

    def preview(self, contact: ContactState, events: Iterable[tuple[str, Data]]) -> ContactState:
        """The contact as it will be once `events` (a placement not yet stored) are: a copy,
        so that an offer can be decided in the same atomic append as the placement. The
        state itself is not touched; only events that change nothing but the contact may be
        previewed."""
        shadow = copy.copy(contact)
        shadow.tried, shadow.deadlines_done = dict(contact.tried), set(contact.deadlines_done)
        for type_, data in events:
            if type_ not in _PREVIEWABLE:
                raise ValueError(f"{type_} cannot be previewed: its handler changes more than the contact")
            shadow.version += 1
            _CONTACT_HANDLERS[type_](self, shadow, data)
        return shadow

    def forget_done(self, keep: Callable[[ContactState], bool]) -> int:
        """Drop finished contacts from memory (the log keeps them); returns how many."""
        done = [k for k, c in self.contacts.items() if c.status in (DONE, UNROUTABLE) and not keep(c)]
        for key in done:
            del self.contacts[key]
            self.waiting_ids.pop(key, None)
        return len(done)


# -- contact events -----------------------------------------------------------------------

Data = Mapping[str, Any]


def _arrived(state: RouterState, contact: ContactState, data: Data) -> None:
    contact.facts = facts_from_data(data)


def _intent_changed(state: RouterState, contact: ContactState, data: Data) -> None:
    if contact.facts is not None:
        contact.facts = replace(contact.facts, intent=Intent(data["intent"]),
                                repeat_count=int(data.get("repeat_count", contact.facts.repeat_count)))
        # Offered: placed again if the offer comes back (rejected, expired, revoked); the
        # round places only waiting contacts. Before, a change during an offer was lost.
        # Only in the contact's first wait: one waiting again (an agent's transfer, a callback
        # come due) stays where that move put it. Placed again, it went back to the policy's
        # queue without the transfer's requirements, its wait counted from the first queueing.
        first_wait = contact.moved_at_s == 0.0 and not contact.callback_due
        contact.replan = first_wait and contact.status in (WAITING, OFFERED)


def _queued(state: RouterState, contact: ContactState, data: Data) -> None:
    contact.plan = plan_from_json(data["plan"])
    contact.queue_id = data["queue_id"]
    contact.queued_at_s = float(data["queued_at_s"])
    contact.wait_from_s = contact.queued_at_s
    contact.requirements = None
    contact.sla_target_s = contact.wrapup_s = None  # placed again: the new plan's queue's, not a moved-to one's
    contact.max_wait_s, contact.overflow_to = None, None  # and its plan's timeline again
    contact.steps_done = 0
    contact.replan = False
    if contact.plan.callback_at_s is not None and contact.callback_at_s is None:  # e.g. after hours
        contact.callback_at_s = contact.plan.callback_at_s
        contact.callback_owed = True
    if contact.status in (NEW, WAITING):
        contact.status = WAITING


def _requeued(state: RouterState, contact: ContactState, data: Data) -> None:
    from .plancodec import requirement_from_json

    if data.get("reason") == "named_agent_fallback":
        # The named agent let its offer go: it is not offered it again, not even as a second
        # chance (an expired offer would otherwise allow one). One who never had an offer
        # (away all along, the SLA target passed) may still take it from the queue.
        for named in (r.name for r in contact.requirements or () if r.kind is RequirementKind.AGENT):
            if named in contact.tried or (contact.offer is not None and contact.offer.agent_id == named):
                contact.tried[named] = "passed"
    contact.queue_id = data["queue_id"]
    contact.requirements = tuple(requirement_from_json(r) for r in data["requirements"])
    _queue_targets(contact, data)
    contact.max_wait_s = None if data.get("max_wait_s") is None else float(data["max_wait_s"])
    contact.overflow_to = data.get("overflow_to")
    contact.moved_at_s = float(data["at_s"])
    contact.priority_boost += float(data.get("priority_boost", 0.0))
    if data.get("same_wait"):  # a named agent did not take it: the same wait goes on, elsewhere
        return
    contact.tried.clear()
    contact.agent_id = None
    contact.status = WAITING
    _waits_again(contact, float(data["at_s"]))


def _waits_again(contact: ContactState, at_s: float) -> None:
    contact.wait_from_s = at_s
    contact.sla_breached = False  # the new wait has its own SLA clock


def _unroutable(state: RouterState, contact: ContactState, data: Data) -> None:
    contact.status = UNROUTABLE


def _escalated(state: RouterState, contact: ContactState, data: Data) -> None:
    contact.steps_done = max(contact.steps_done, int(data["step"]) + 1)
    contact.queue_id = data.get("queue_id", contact.queue_id)  # an overflow or escalation moves it
    _queue_targets(contact, data)
    if data.get("action") == "offer_callback":  # the CallbackScheduled that follows is slotted so
        contact.callback_within_hours = bool((data.get("params") or {}).get("within_business_hours"))


def _sla_breached(state: RouterState, contact: ContactState, data: Data) -> None:
    contact.sla_breached = True


def _offer_made(state: RouterState, contact: ContactState, data: Data) -> None:
    agent = state.agents.get(data["agent_id"])
    offer = Offer(data["offer_id"], contact.contact_id, data["agent_id"], Channel(data["channel"]),
                  float(data["offered_at_s"]), float(data["expires_at_s"]), agent.profile if agent else None)
    state.offers[offer.offer_id] = offer
    state.offer_reasons[offer.offer_id] = list(data.get("reasons", ()))
    contact.offer = offer
    contact.status = OFFERED


_HOW_OFFERS_END: Final = {ev.OFFER_REJECTED: "rejected", ev.OFFER_EXPIRED: "expired"}
_CLOCKS_SLACK_S: Final = 60.0  # how far the router's and the database's clocks may differ


def _offer_closed(state: RouterState, contact: ContactState, data: Data) -> None:
    """Rejected, expired or revoked: the contact waits again, not for that agent."""
    state.offers.pop(data["offer_id"], None)
    state.offer_reasons.pop(data["offer_id"], None)
    state.closed_offers.remember(data["offer_id"], str(data.get("reason", "withdrawn")))
    if contact.offer is not None and contact.offer.offer_id == data["offer_id"]:
        contact.offer = None
        ended = state.applying.type if state.applying is not None else ev.OFFER_REVOKED
        if contact.tried.get(data["agent_id"]) != "passed":  # a named agent's fallback came first
            contact.tried[data["agent_id"]] = _HOW_OFFERS_END.get(ended, "revoked")
        if contact.status == OFFERED:
            contact.status = WAITING


def _assigned(state: RouterState, contact: ContactState, data: Data) -> None:
    state.offers.pop(data["offer_id"], None)
    state.offer_reasons.pop(data["offer_id"], None)
    state.assigned_offers.remember(data["offer_id"], contact.contact_id)
    contact.offer = None
    contact.agent_id = data["agent_id"]
    contact.status = ASSIGNED
    contact.replan = False  # answered: a later move (a transfer) is the agent's choice, not a re-placement
    if contact.plan is not None and contact.queue_id is not None:
        waited_s = float(data["waited_s"])
        state.record(Outcome(float(data["at_s"]), contact.queue_id, True, waited_s,
                             waited_s <= answer_within_s(contact)))


def _finished(state: RouterState, contact: ContactState, data: Data) -> None:
    """Completed by the agent, or ended/abandoned by the customer."""
    # A customer who hangs up once a callback is promised did not abandon: the callback is the
    # contact's answer (or not), counted when it is made.
    promised = contact.callback_owed
    if (contact.status in (WAITING, OFFERED) and contact.plan is not None and contact.queue_id is not None
            and not promised):
        state.record(_unanswered(state, contact, data, contact.queue_id))
    contact.end_reason = contact.end_reason or data.get("cause") or data.get("disposition") or "ended"
    contact.status = DONE


def _unanswered(state: RouterState, contact: ContactState, data: Data, queue_id: str) -> Outcome:
    """The outcome of a wait the customer (or something else) ended before an answer."""
    if "waited_s" not in data and state.applying is not None:
        # Ended while waiting by something else than the customer (the network, the gateway):
        # the wait is what the router saw, up to when the end was stored. (It counted as a
        # 0 s abandon dated at the queueing: a ten-minute wait vanished from the figures.)
        end_s = state.applying.recorded_at.timestamp()
        return Outcome(float(data.get("at_s") or end_s), queue_id, False, max(0.0, end_s - contact.wait_from_s), False)
    # The gateway counts the wait from the contact's arrival; a contact waiting again (a
    # transfer, a callback) has had its talk time since, which is no wait of this leg.
    waited_s = max(0.0, float(data.get("waited_s", 0.0)) - (contact.wait_from_s - contact.queued_at_s))
    # The gateway measures the wait on its own clock (from its own occurred_at times): it
    # cannot have waited longer than the router saw, up to when the event was stored. A
    # gateway clock days ahead once dated an abandon in the future, which emptied the
    # live figures (every outcome older than 24 h before it was dropped).
    if state.applying is not None:
        # (The slack: `recorded_at` is the database's clock, `wait_from_s` the router's.)
        seen_s = state.applying.recorded_at.timestamp() - contact.wait_from_s + _CLOCKS_SLACK_S
        waited_s = min(waited_s, max(0.0, seen_s))
    return Outcome(float(data.get("at_s") or contact.wait_from_s + waited_s), queue_id, False, waited_s, False)


def _callback_scheduled(state: RouterState, contact: ContactState, data: Data) -> None:
    contact.callback_at_s = float(data["callback_at_s"])
    # A new promise (another callback step, or the slot moved on after a stop) is owed
    # afresh, even when an earlier one already fell due: it gets its own timer.
    contact.callback_owed = True


def _callback_due(state: RouterState, contact: ContactState, data: Data) -> None:
    """The promised callback is due: the contact waits again (if the customer had gone,
    as an outbound call), ahead of new arrivals, offered afresh to every agent."""
    contact.callback_due = True
    contact.callback_owed = False
    contact.priority_boost += 50.0
    if contact.status == DONE and contact.agent_id is None:
        contact.status = WAITING
        contact.end_reason = None
        contact.tried.clear()
    if contact.status == WAITING:
        _waits_again(contact, float(data["at_s"]))


def _deadline_due(state: RouterState, contact: ContactState, data: Data) -> None:
    contact.deadlines_done.add(data["name"])


def _transferred(state: RouterState, contact: ContactState, data: Data) -> None:
    if data.get("to_agent"):
        contact.tried.clear()


_CONTACT_HANDLERS: dict[str, Callable[[RouterState, ContactState, Data], None]] = {
    ev.CONTACT_ARRIVED: _arrived,
    ev.CONTACT_INTENT_CHANGED: _intent_changed,
    ev.CONTACT_QUEUED: _queued,
    # The deadline it states is the plan's (ContactQueued): a record for readers of the log.
    ev.SLA_TIMER_STARTED: lambda state, contact, data: None,
    ev.CONTACT_REQUEUED: _requeued,
    ev.CONTACT_UNROUTABLE: _unroutable,
    ev.ESCALATION_APPLIED: _escalated,
    ev.SLA_BREACHED: _sla_breached,
    ev.OFFER_MADE: _offer_made,
    ev.OFFER_REJECTED: _offer_closed,
    ev.OFFER_EXPIRED: _offer_closed,
    ev.OFFER_REVOKED: _offer_closed,
    ev.CONTACT_ASSIGNED: _assigned,
    ev.CONTACT_COMPLETED: _finished,
    ev.CUSTOMER_ABANDONED: _finished,
    ev.CONTACT_ENDED: _finished,
    ev.CONTACT_TRANSFERRED: _transferred,
    ev.FOLLOW_UP_DUE: _deadline_due,
    ev.CALLBACK_SCHEDULED: _callback_scheduled,
    ev.CALLBACK_DUE: _callback_due,
}

# Handlers that change only the contact they are given (see RouterState.preview).
_PREVIEWABLE: frozenset[str] = frozenset({ev.CONTACT_QUEUED, ev.SLA_TIMER_STARTED})

from .agentstate import AGENT_HANDLERS as _AGENT_HANDLERS  # noqa: E402  (handlers need the classes above)

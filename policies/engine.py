"""Compile a policy document once per version; evaluate it for each contact.

`evaluate` is a pure function of (compiled policy, contact, now_s): no clock,
no randomness, no I/O. Matching runs on precompiled bitsets (see `matching`);
a rule's requirements and timeline are memoised per contact shape when they do
not depend on the instant.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Generic, TypeVar

from policies.errors import PolicyError, PolicyInvalid
from policies.explain import RuleChecker, describe_rule
from policies.hours import Calendar, callback_slot_from_minute, local_time, minute_of_day
from policies.matching import MAIN_CALENDAR, MatchIndex, Moment, lowest_bit
from policies.plan import (
    Deadline,
    EscalationStep,
    Explanation,
    Requirement,
    RoutingPlan,
    StepAction,
    due_steps,
    next_step,
    priority_at,
    queue_at,
    requirements_at,
)
from policies.schema import PolicyDocument, RequirementSpec, RuleSpec, StepSpec
from policies.timeline import QueueInfo, TimelineContext, merge, queue_requirements, resolve_all, walk
from policies.validate import validate_document
from policies.vocabulary import CallbackWindow, ContactFacts, Strategy

__all__ = [
    "CompiledPolicy", "NoMatchingRule", "RuleProgram", "compile_policy", "evaluate", "moment_at",
    "due_steps", "next_step", "priority_at", "queue_at", "requirements_at",
]
MEMO_LIMIT = 4096
Timeline = tuple[tuple[Requirement, ...], tuple[EscalationStep, ...], tuple[str, ...]]
SlotKey = tuple[int, bool, tuple[CallbackWindow, ...]]
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class NoMatchingRule(PolicyError):
    """No rule matched the contact: validation should have caught it; never wait silently."""


class Memo(Generic[K, T]):
    """A bounded memo of a pure function's results: cleared when full, never stale."""

    __slots__ = ("_data", "_limit")

    def __init__(self, limit: int = MEMO_LIMIT) -> None:
        self._data: dict[K, T] = {}
        self._limit = limit

    def get(self, key: K, make: Callable[[], T]) -> T:
        try:
            return self._data[key]
        except KeyError:
            if len(self._data) >= self._limit:
                self._data.clear()
            value = self._data[key] = make()
            return value


@dataclass(frozen=True, slots=True)
class RuleProgram:
    index: int
    spec: RuleSpec
    queue: QueueInfo
    priority: float
    priority_growth_per_min: float
    offer_timeout_s: float
    strategy: Strategy
    deadlines_s: tuple[tuple[str, float], ...]
    has_callbacks: bool  # callback slots depend on the instant: filled per evaluation
    names_agents: bool  # an `agent:` requirement may apply: the memo key includes the agent ids
    description: str  # what the rule matches, for reasons
    checker: RuleChecker  # why it did not match a contact, for reasons
    steps: tuple[tuple[str, StepSpec], ...]  # the defaults' steps and the rule's, with their paths
    memo: Memo[tuple[str, bool, str, str | None, str | None], Timeline] = field(default_factory=Memo, compare=False)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    version: int
    document: PolicyDocument
    rules: tuple[RuleProgram, ...]
    queues: Mapping[str, QueueInfo]
    matcher: MatchIndex
    unless: MatchIndex | None
    context: TimelineContext
    calendars: Mapping[str, Calendar]
    needs_moment: bool
    moments: Memo[int, Moment] = field(default_factory=Memo, compare=False)
    slots: Memo[SlotKey, float | None] = field(default_factory=Memo, compare=False)

    @property
    def home_language(self) -> str:
        return self.context.home_language

    def queue(self, queue_id: str) -> QueueInfo:
        return self.queues[queue_id]


def compile_policy(doc: PolicyDocument, version: int) -> CompiledPolicy:
    """Check the document (without a roster) and precompute everything evaluation needs."""
    report = validate_document(doc)
    if not report.ok:
        raise PolicyInvalid(report)
    queues = {q.id: QueueInfo(q.id, i, q.name or q.id, q.sla.answer_within_s, q.sla.target_pct,
                              q.max_wait_s, q.overflow_to, q.wrapup_s, q.require)
              for i, q in enumerate(doc.queues)}
    calendars = {name: spec.compile() for name, spec in doc.calendars.items()}
    if doc.business_hours is not None:
        calendars[MAIN_CALENDAR] = doc.business_hours.compile()
    context = TimelineContext(queues, doc.home_language, doc.zone(), calendars.get(MAIN_CALENDAR))
    matcher = MatchIndex([r.match for r in doc.rules])
    has_unless = any(r.unless is not None for r in doc.rules)
    unless = MatchIndex([r.unless for r in doc.rules]) if has_unless else None
    rules = tuple(_program(doc, i, r, queues[r.queue]) for i, r in enumerate(doc.rules))
    needs_moment = bool(calendars) or matcher.uses_time or bool(unless and unless.uses_time)
    return CompiledPolicy(version, doc, rules, queues, matcher, unless, context, calendars, needs_moment)


def _program(doc: PolicyDocument, index: int, rule: RuleSpec, queue: QueueInfo) -> RuleProgram:
    defaults = doc.defaults
    growth = rule.priority_growth_per_min
    return RuleProgram(
        index=index, spec=rule, queue=queue, priority=rule.priority,
        priority_growth_per_min=defaults.priority_growth_per_min if growth is None else growth,
        offer_timeout_s=rule.offer_timeout_s or defaults.offer_timeout_s,
        strategy=rule.strategy or defaults.strategy,
        deadlines_s=tuple((d.name, d.within_h * 3600.0) for d in rule.deadlines),
        has_callbacks=rule.callback or any(s.offer_callback is not None for s in defaults.escalate + rule.escalate),
        names_agents=any(r.agent is not None for r in _all_requirement_specs(doc, rule)),
        description=describe_rule(rule),
        checker=RuleChecker.of(rule),
        steps=tuple((f"defaults.escalate[{j}]", s) for j, s in enumerate(defaults.escalate))
        + tuple((f"rules[{index}].escalate[{j}]", s) for j, s in enumerate(rule.escalate)),
    )


def _all_requirement_specs(doc: PolicyDocument, rule: RuleSpec) -> tuple[RequirementSpec, ...]:
    queued = tuple(r for q in doc.queues for r in q.require)
    return doc.defaults.require + queued + rule.require


def moment_at(policy: CompiledPolicy, now_s: float) -> Moment:
    """Local time facts for rules; they change once a minute, so they are memoised per minute."""
    minute = int(now_s // 60)
    return policy.moments.get(minute, partial(_moment, policy, minute * 60.0))


def _moment(policy: CompiledPolicy, minute_s: float) -> Moment:
    local = local_time(minute_s, policy.context.zone)
    opened = frozenset(name for name, cal in policy.calendars.items() if cal.is_open(local))
    return Moment(minute_of_day(local), local.weekday(), opened)


def callback_at(policy: CompiledPolicy, contact: ContactFacts, at_s: float, within_hours: bool) -> float | None:
    """The first callback slot from `at_s` in the customer's windows (and business hours)."""
    minute = int(at_s // 60)
    key = (minute, within_hours, contact.callback_windows)
    ctx = policy.context
    calendar = ctx.calendar if within_hours else None
    find = partial(callback_slot_from_minute, minute * 60.0, ctx.zone, calendar, contact.callback_windows)
    slot = policy.slots.get(key, find)
    return None if slot is None else max(slot, at_s)


def match_index(policy: CompiledPolicy, contact: ContactFacts, moment: Moment | None) -> int:
    """Index of the first matching rule, or -1."""
    home = policy.context.home_language
    mask = policy.matcher.mask(contact, home, moment)
    if policy.unless is not None and mask:
        mask &= ~policy.unless.mask(contact, home, moment)
    return lowest_bit(mask)


def evaluate(policy: CompiledPolicy, contact: ContactFacts, now_s: float) -> RoutingPlan:
    """The routing plan for `contact` arriving at `now_s` (epoch seconds)."""
    moment = moment_at(policy, now_s) if policy.needs_moment else None
    index = match_index(policy, contact, moment)
    if index < 0:
        raise NoMatchingRule(f"no rule matches contact {contact.contact_id}")
    rule = policy.rules[index]
    requirements, steps, notes = _timeline(policy, rule, contact)
    callback_at_s = callback_at(policy, contact, now_s, True) if rule.spec.callback else None
    if rule.has_callbacks:
        steps, notes = _fill_callbacks(policy, contact, now_s, steps, notes)
    queue = rule.queue
    after_hours = moment is not None and MAIN_CALENDAR in policy.calendars and (
        MAIN_CALENDAR not in moment.open_calendars)
    return RoutingPlan(
        policy.version, rule.spec.id, index, queue.id, requirements, rule.priority,
        rule.priority_growth_per_min, rule.offer_timeout_s, rule.strategy, queue.answer_within_s,
        queue.target_pct, queue.max_wait_s, queue.wrapup_s, steps,
        tuple(Deadline(name, now_s + within_s) for name, within_s in rule.deadlines_s),
        after_hours, callback_at_s, now_s,
        Explanation(partial(explain_plan, policy, contact, moment, index, notes, after_hours)),
    )


def _timeline(policy: CompiledPolicy, rule: RuleProgram, contact: ContactFacts) -> Timeline:
    home = policy.context.home_language
    agents = (contact.dedicated_agent, contact.last_agent) if rule.names_agents else (None, None)
    key = (contact.language, home in contact.languages, contact.channel.value, *agents)
    return rule.memo.get(key, partial(_build_timeline, policy, rule, contact))


def _build_timeline(policy: CompiledPolicy, rule: RuleProgram, contact: ContactFacts) -> Timeline:
    ctx = policy.context
    home = ctx.home_language
    requirements = merge(
        resolve_all(policy.document.defaults.require, contact, home),
        queue_requirements(rule.queue, contact, home),
        resolve_all(rule.spec.require, contact, home),
    )
    steps, notes = walk(ctx, contact, rule.queue.id, requirements, rule.steps)
    return requirements, steps, notes


def _fill_callbacks(
    policy: CompiledPolicy, contact: ContactFacts, now_s: float,
    steps: tuple[EscalationStep, ...], notes: tuple[str, ...],
) -> tuple[tuple[EscalationStep, ...], tuple[str, ...]]:
    filled: list[EscalationStep] = []
    for step in steps:
        if step.action is StepAction.OFFER_CALLBACK:
            within = bool(step.params.get("within_business_hours"))
            slot = callback_at(policy, contact, now_s + step.after_s, within)
            if slot is None:
                notes += (f"{step.source}: no callback slot in the customer's windows within 14 days",)
            step = replace(step, params={**step.params, "callback_at_s": slot})
        filled.append(step)
    return tuple(filled), notes


def explain_plan(
    policy: CompiledPolicy, contact: ContactFacts, moment: Moment | None,
    index: int, notes: tuple[str, ...], after_hours: bool,
) -> tuple[str, ...]:
    """Which rule matched and why every earlier rule did not, plus notes on skipped steps."""
    home = policy.context.home_language
    rule = policy.rules[index]
    lines = [f"rule '{rule.spec.id}' (rules[{index}]) matched: {rule.description}"]
    for earlier in policy.rules[:index]:
        why = earlier.checker.why_not(contact, home, moment) or "no failing condition found"
        lines.append(f"rule '{earlier.spec.id}' (rules[{earlier.index}]) did not match: {why}")
    if after_hours:
        lines.append("outside business hours")
    lines.extend(notes)
    return tuple(lines)

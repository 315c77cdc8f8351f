"""Static checks of a schema-valid document: references, shadowed rules, cycles, steps."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from policies.hours import TimeRange
from policies.matching import minutes_of
from policies.report import Issue, error, warning
from policies.schema import CONTACT, MatchSpec, PolicyDocument, QueueSpec, RequirementSpec, RuleSpec, StepSpec

ESCALATION_LEVELS = {"supervisor": 1, "expert_team": 2}


def check_references(doc: PolicyDocument) -> Iterator[Issue]:
    yield from _duplicates("queues", [q.id for q in doc.queues], "queue")
    yield from _duplicates("rules", [r.id for r in doc.rules], "rule")
    queues = doc.queue_ids()
    for k, q in enumerate(doc.queues):
        if q.overflow_to is not None and q.overflow_to not in queues:
            yield error(f"queues[{k}].overflow_to", f"unknown queue '{q.overflow_to}'", "unknown_queue")
    for i, rule in enumerate(doc.rules):
        yield from _rule_references(doc, i, rule, queues)
    for j, step in enumerate(doc.defaults.escalate):
        yield from _step_references(doc, f"defaults.escalate[{j}]", step, queues)


def _duplicates(path: str, ids: Sequence[str], what: str) -> Iterator[Issue]:
    for i, ident in enumerate(ids):
        if ident in ids[:i]:
            yield error(f"{path}[{i}].id", f"duplicate {what} id '{ident}'", f"duplicate_{what}")


def _rule_references(doc: PolicyDocument, i: int, rule: RuleSpec, queues: dict[str, int]) -> Iterator[Issue]:
    if rule.queue not in queues:
        yield error(f"rules[{i}].queue", f"unknown queue '{rule.queue}'", "unknown_queue")
    for part, spec in (("match", rule.match), ("unless", rule.unless)):
        if spec is not None:
            yield from _calendar_reference(doc, f"rules[{i}].{part}", spec)
    for j, step in enumerate(rule.escalate):
        yield from _step_references(doc, f"rules[{i}].escalate[{j}]", step, queues)


def _step_references(doc: PolicyDocument, path: str, step: StepSpec, queues: dict[str, int]) -> Iterator[Issue]:
    if step.overflow is not None and step.overflow not in queues:
        yield error(f"{path}.overflow", f"unknown queue '{step.overflow}'", "unknown_queue")
    target = step.escalate.queue if step.escalate else None
    if target is not None and target not in queues:
        yield error(f"{path}.escalate.queue", f"unknown queue '{target}'", "unknown_queue")
    if step.offer_callback is not None and step.offer_callback.within_business_hours and not doc.business_hours:
        yield warning(f"{path}.offer_callback", "no business_hours defined: callbacks may be set at any hour",
                      "callback_without_hours")


def _calendar_reference(doc: PolicyDocument, path: str, spec: MatchSpec) -> Iterator[Issue]:
    if spec.business_hours is None:
        return
    if spec.calendar is None and doc.business_hours is None:
        yield error(f"{path}.business_hours", "no business_hours defined in the policy", "unknown_calendar")
    elif spec.calendar is not None and spec.calendar not in doc.calendars:
        yield error(f"{path}.calendar", f"unknown calendar '{spec.calendar}'", "unknown_calendar")


def check_shadowing(doc: PolicyDocument) -> Iterator[Issue]:
    """A rule every contact of which an earlier rule already takes can never match."""
    for j, later in enumerate(doc.rules):
        for i, earlier in enumerate(doc.rules[:j]):
            if earlier.unless is None and covers(earlier.match, later.match):
                what = "matches every contact" if earlier.match.is_empty() else "matches every contact it would"
                yield warning(f"rules[{j}]", f"rule '{later.id}' never matches: rule '{earlier.id}' "
                              f"(rules[{i}]) comes first and {what}", "shadowed_rule")
                break


def covers(a: MatchSpec, b: MatchSpec) -> bool:
    """Every contact that matches `b` also matches `a`."""
    return (
        all(_subset(getattr(a, f), getattr(b, f)) for f in SET_FIELDS)
        and all(getattr(a, f) is None or getattr(a, f) == getattr(b, f) for f in FLAG_FIELDS)
        and _range_covers(a, b)
        and (a.business_hours is None or (a.business_hours, a.calendar) == (b.business_hours, b.calendar))
        and _minutes_cover(a.time_of_day, b.time_of_day)
        and _subset_days(a, b)
    )


SET_FIELDS = ("channel", "segment", "intent", "language", "needs", "tags", "dialled_line")
FLAG_FIELDS = ("speaks_home_language", "has_dedicated_agent")


def _subset(a: Sequence[object] | None, b: Sequence[object] | None) -> bool:
    return a is None or (b is not None and set(b) <= set(a))


def _range_covers(a: MatchSpec, b: MatchSpec) -> bool:
    low_ok = a.repeat_count_min is None or (b.repeat_count_min or 0) >= a.repeat_count_min
    high_a, high_b = a.repeat_count_max, b.repeat_count_max
    high_ok = high_a is None or (high_b is not None and high_b <= high_a)
    return low_ok and high_ok


def _minutes(ranges: Sequence[TimeRange]) -> set[int]:
    return {m for r in ranges for m in minutes_of(r)}


def _minutes_cover(a: Sequence[TimeRange] | None, b: Sequence[TimeRange] | None) -> bool:
    return a is None or (b is not None and _minutes(b) <= _minutes(a))


def _subset_days(a: MatchSpec, b: MatchSpec) -> bool:
    days_a, days_b = a.weekdays(), b.weekdays()
    return days_a is None or (days_b is not None and days_b <= days_a)


def check_overflow_cycles(doc: PolicyDocument) -> Iterator[Issue]:
    """Queues whose max-wait overflow chain comes back to them; reported once per cycle."""
    targets = {q.id: q.overflow_to for q in doc.queues}
    reported: set[str] = set()
    for k, q in enumerate(doc.queues):
        chain = _chain(q.id, targets)
        if len(chain) > 1 and chain[-1] == q.id and q.id not in reported:
            reported.update(chain)
            yield error(f"queues[{k}].overflow_to", f"overflow cycle: {' -> '.join(chain)}", "overflow_cycle")


def _chain(start: str, targets: dict[str, str | None]) -> list[str]:
    chain = [start]
    current = targets.get(start)
    while current is not None and current not in chain:
        chain.append(current)
        current = targets.get(current)
    return chain + [current] if current is not None else chain


@dataclass
class _Held:
    kind: str
    target: str
    hard: bool | str
    min_level: int


def check_steps(doc: PolicyDocument) -> Iterator[Issue]:
    """Walk each rule's steps over its requirement specs: no hard relax, no loops, sane order."""
    queues = {q.id: q for q in doc.queues}
    yield from _order("defaults.escalate", doc.defaults.escalate)
    defaults = [(f"defaults.escalate[{j}]", s) for j, s in enumerate(doc.defaults.escalate)]
    for i, rule in enumerate(doc.rules):
        yield from _order(f"rules[{i}].escalate", rule.escalate)
        if rule.queue in queues:
            own = [(f"rules[{i}].escalate[{j}]", s) for j, s in enumerate(rule.escalate)]
            steps = sorted(defaults + own, key=lambda pair: pair[1].after_s)
            yield from _rule_steps(rule, steps, queues, doc.defaults.require)


def _order(path: str, steps: Sequence[StepSpec]) -> Iterator[Issue]:
    for j in range(1, len(steps)):
        if steps[j].after_s < max(s.after_s for s in steps[:j]):
            yield warning(f"{path}[{j}].after_s", "steps are not in waiting-time order; they run sorted",
                          "step_order")


def _rule_steps(
    rule: RuleSpec, steps: Sequence[tuple[str, StepSpec]], queues: dict[str, QueueSpec],
    defaults: tuple[RequirementSpec, ...],
) -> Iterator[Issue]:
    held = _held(defaults + queues[rule.queue].require + rule.require)
    visited, level = [rule.queue], 0
    entered_s, max_wait_done = 0.0, False
    for path, step in steps:
        # A queue's own max wait moves the contact before a later step, as the runtime's walk
        # does (policies/timeline.py): a relax after it applies to the queue it overflowed to.
        while not max_wait_done and (info := queues[visited[-1]]).max_wait_s is not None \
                and entered_s + info.max_wait_s < step.after_s:
            max_wait_done = True
            target = info.overflow_to
            if target is not None and target in queues and target not in visited:
                held = [h for h in held if h.hard] + _held(queues[target].require)
                entered_s += info.max_wait_s
                visited.append(target)
                max_wait_done = False
        yield from _step_issue(path, step, held, visited, not path.startswith("defaults"), rule.id)
        target = step.overflow or (step.escalate.queue if step.escalate else None)
        if target is not None and target in queues and target != visited[-1]:
            held = [h for h in held if h.hard] + _held(queues[target].require)
            visited.append(target)
            entered_s, max_wait_done = step.after_s, False
        if step.escalate is not None:
            new_level = ESCALATION_LEVELS[step.escalate.to]
            if new_level < level:
                yield error(f"{path}.escalate", f"escalates back down to {step.escalate.to}", "escalation_order")
            level = max(level, new_level)


def _held(specs: Sequence[RequirementSpec]) -> list[_Held]:
    return [_Held(s.kind, s.target, s.hard, s.min_level) for s in specs]


def _step_issue(
    path: str, step: StepSpec, held: list[_Held], visited: list[str], strict: bool, rule_id: str
) -> Iterator[Issue]:
    """`strict` is off for the defaults' steps: a default relax may target what only some rules require."""
    if step.overflow is not None and step.overflow in visited:
        loop = " -> ".join([*visited, step.overflow])
        yield error(f"{path}.overflow", f"overflow cycle: {loop}", "overflow_cycle")
    if step.relax is None:
        return
    relax = step.relax
    found = [h for h in held if h.kind == relax.kind and h.target == relax.target]
    label = f"{relax.kind} {relax.target}"
    if not found and not any(h.kind == relax.kind and h.target == CONTACT for h in held):
        if not strict:
            return
        yield error(f"{path}.relax", f"relaxes {label}, which is not required at that point", "relax_unknown")
    elif any(h.hard is True for h in found) and strict:
        yield error(f"{path}.relax", f"relaxes hard requirement {label}", "relax_hard")
    elif any(h.hard is True for h in found):
        yield warning(f"{path}.relax", f"relaxes hard requirement {label} of rule '{rule_id}'; "
                      "it is skipped for that rule", "relax_hard_default")
    elif relax.to is not None and all(h.min_level <= relax.to for h in found):
        if not strict:
            return
        yield warning(f"{path}.relax.to", f"{label} is already at most {relax.to}; nothing to relax", "relax_noop")
    else:
        _apply_relax(held, found, relax.to)


def _apply_relax(held: list[_Held], found: list[_Held], to: int | None) -> None:
    for h in found:
        if to is None:
            held.remove(h)
        else:
            h.min_level = min(h.min_level, to)

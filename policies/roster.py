"""Roster checks: queues and rules whose requirements no agent on the roster meets."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from policies.report import Issue, warning
from policies.schema import CONTACT, PolicyDocument, QueueSpec, RequirementSpec, RuleSpec
from policies.vocabulary import AgentProfile

Need = tuple[str, str, int, bool]  # (kind, name, min_level, hard)


def check_roster(doc: PolicyDocument, roster: Sequence[AgentProfile]) -> Iterator[Issue]:
    queues = {q.id: q for q in doc.queues}
    for k, queue in enumerate(doc.queues):
        needs = _needs(queue.require, None, None)
        if needs and _unmet(needs, roster):
            yield warning(f"queues[{k}].require", _gap_message(needs, roster), "roster_gap")
    for i, rule in enumerate(doc.rules):
        if rule.queue in queues:
            yield from _rule_gaps(i, rule, queues[rule.queue], doc.defaults.require, roster)


def _rule_gaps(
    i: int, rule: RuleSpec, queue: QueueSpec, defaults: tuple[RequirementSpec, ...], roster: Sequence[AgentProfile]
) -> Iterator[Issue]:
    languages: Sequence[str | None] = rule.match.language or [None]
    channels: Sequence[str | None] = rule.match.channel or [None]
    for language, channel in itertools.product(languages, channels):
        needs = _needs(defaults + queue.require + rule.require, language, channel)
        if channel is not None:
            needs.append(("channel", channel, 0, True))
        needs = list(dict.fromkeys(needs))  # `channel: contact` and the match's channel name one need
        hard = [n for n in needs if n[3]]
        if hard and _unmet(hard, roster):
            yield warning(f"rules[{i}]", f"contacts of rule '{rule.id}' can never be served: "
                          f"{_gap_message(hard, roster)}", "roster_gap")
            return
        if needs and _unmet(needs, roster):
            yield warning(f"rules[{i}]", f"rule '{rule.id}': {_gap_message(needs, roster)} "
                          "(until an escalation step relaxes it)", "roster_gap")
            return


def _needs(specs: Sequence[RequirementSpec], language: str | None, channel: str | None) -> list[Need]:
    """Requirements checkable without a contact: 'contact' resolved from the rule's match when it can be."""
    needs: list[Need] = []
    for s in specs:
        name: str | None = s.target
        if name == CONTACT:
            name = language if s.kind == "language" else channel
        if name is not None and s.kind != "agent":
            needs.append((s.kind, name, s.min_level if s.skill else 0, s.hard is not False))
    return needs


def meets(agent: AgentProfile, need: Need) -> bool:
    kind, name, level, _ = need
    if kind == "skill":
        return agent.skills.get(name, 0) >= level
    if kind == "language":
        return name in agent.languages
    return any(str(ch) == name and cap > 0 for ch, cap in agent.channels.items())


def _unmet(needs: Sequence[Need], roster: Sequence[AgentProfile]) -> bool:
    return not any(all(meets(a, n) for n in needs) for a in roster)


def _label(need: Need) -> str:
    kind, name, level, _ = need
    return f"skill {name}>={level}" if kind == "skill" else f"{kind} {name}"


def _gap_message(needs: Sequence[Need], roster: Sequence[AgentProfile]) -> str:
    text = f"no agent has {' and '.join(_label(n) for n in needs)}"
    if not roster:
        return text + " (the roster is empty)"
    closest = min(roster, key=lambda a: (sum(not meets(a, n) for n in needs), a.agent_id))
    missing = [_label(n) for n in needs if not meets(closest, n)]
    return f"{text} (closest: agent '{closest.agent_id}' lacks {', '.join(missing)})"

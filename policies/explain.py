"""Human-readable matching: why a rule did or did not match one contact.

This is the slow, obvious twin of `matching.MatchIndex`: it checks one rule at a
time and says which condition failed. Explanations and the simulator use it; the
tests check that both always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from policies.hours import DAY_NAMES, format_minute, format_ranges
from policies.matching import MAIN_CALENDAR, Moment
from policies.schema import MatchSpec, RuleSpec
from policies.vocabulary import ContactFacts

Check = Callable[[MatchSpec, ContactFacts, str, "Moment | None"], "str | None"]


def _one_of(values: Iterable[object]) -> str:
    return " or ".join(str(v) for v in values)


def _channel(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    return None if s.channel is None or c.channel in s.channel else f"channel is {c.channel}, not {_one_of(s.channel)}"


def _segment(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    return None if s.segment is None or c.segment in s.segment else f"segment is {c.segment}, not {_one_of(s.segment)}"


def _intent(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    return None if s.intent is None or c.intent in s.intent else f"intent is {c.intent}, not {_one_of(s.intent)}"


def _language(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    if s.language is None or c.language in s.language:
        return None
    return f"language is {c.language}, not {_one_of(s.language)}"


def _speaks_home(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    speaks = home in c.languages
    if s.speaks_home_language is None or s.speaks_home_language == speaks:
        return None
    return f"customer {'speaks' if speaks else 'does not speak'} {home}"


def _needs(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    if s.needs is None or c.needs.intersection(s.needs):
        return None
    have = ", ".join(sorted(c.needs)) or "none"
    return f"needs are {have}, not {_one_of(s.needs)}"


def _tags(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    if s.tags is None or c.tags.intersection(s.tags):
        return None
    return f"customer tags are {', '.join(sorted(c.tags)) or 'none'}, not {_one_of(s.tags)}"


def _repeat(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    if s.repeat_count_min is not None and c.repeat_count < s.repeat_count_min:
        return f"repeat count is {c.repeat_count}, below {s.repeat_count_min}"
    if s.repeat_count_max is not None and c.repeat_count > s.repeat_count_max:
        return f"repeat count is {c.repeat_count}, above {s.repeat_count_max}"
    return None


def _dedicated(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    has = c.dedicated_agent is not None
    if s.has_dedicated_agent is None or s.has_dedicated_agent == has:
        return None
    return "customer has a dedicated agent" if has else "customer has no dedicated agent"


def _line(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    if s.dialled_line is None or c.dialled_line in s.dialled_line:
        return None
    return f"dialled line is {c.dialled_line or 'none'}, not {_one_of(s.dialled_line)}"


def _business_hours(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    if s.business_hours is None:
        return None
    name = s.calendar or MAIN_CALENDAR
    state = "open" if m is not None and name in m.open_calendars else "closed"
    label = f"calendar '{name}'" if name else "business hours"
    return None if state == s.business_hours else f"{label}: {state} now, rule wants {s.business_hours}"


def _time_of_day(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    if s.time_of_day is None or (m is not None and any(r.contains(m.minute) for r in s.time_of_day)):
        return None
    now = format_minute(m.minute) if m else "unknown"
    return f"local time {now} is outside {format_ranges(s.time_of_day)}"


def _days(s: MatchSpec, c: ContactFacts, home: str, m: Moment | None) -> str | None:
    days = s.weekdays()
    if days is None or (m is not None and m.weekday in days):
        return None
    return f"today is {DAY_NAMES[m.weekday] if m else 'unknown'}, not {', '.join(s.days or ())}"


CHECKS: tuple[tuple[Check, tuple[str, ...]], ...] = (
    (_channel, ("channel",)), (_segment, ("segment",)), (_intent, ("intent",)), (_language, ("language",)),
    (_speaks_home, ("speaks_home_language",)), (_needs, ("needs",)), (_tags, ("tags",)),
    (_repeat, ("repeat_count_min", "repeat_count_max")), (_dedicated, ("has_dedicated_agent",)),
    (_line, ("dialled_line",)), (_business_hours, ("business_hours",)), (_time_of_day, ("time_of_day",)),
    (_days, ("days",)),
)


def checks_for(spec: MatchSpec) -> tuple[Check, ...]:
    """Only the checks for conditions `spec` sets, in a fixed order."""
    return tuple(check for check, fields in CHECKS if any(getattr(spec, f) is not None for f in fields))


def why_not(spec: MatchSpec, contact: ContactFacts, home: str, moment: Moment | None,
            checks: tuple[Check, ...] | None = None) -> str | None:
    """The first condition of `spec` this contact fails, or None when it matches."""
    for check in checks_for(spec) if checks is None else checks:
        reason = check(spec, contact, home, moment)
        if reason is not None:
            return reason
    return None


@dataclass(frozen=True, slots=True)
class RuleChecker:
    """One rule's checks, picked once, so explaining many rules stays cheap."""

    rule: RuleSpec
    match_checks: tuple[Check, ...]
    unless_checks: tuple[Check, ...]

    @classmethod
    def of(cls, rule: RuleSpec) -> RuleChecker:
        return cls(rule, checks_for(rule.match), checks_for(rule.unless) if rule.unless else ())

    def why_not(self, contact: ContactFacts, home: str, moment: Moment | None) -> str | None:
        rule = self.rule
        reason = why_not(rule.match, contact, home, moment, self.match_checks)
        if reason is None and rule.unless is not None and why_not(
                rule.unless, contact, home, moment, self.unless_checks) is None:
            return f"its 'unless' applies ({describe(rule.unless)})"
        return reason


def rule_why_not(rule: RuleSpec, contact: ContactFacts, home: str, moment: Moment | None) -> str | None:
    return RuleChecker.of(rule).why_not(contact, home, moment)


def describe(spec: MatchSpec) -> str:
    conditions = spec.conditions()
    if not conditions:
        return "every contact"
    return "; ".join(f"{k}: {_show(v)}" for k, v in conditions.items())


def describe_rule(rule: RuleSpec) -> str:
    text = describe(rule.match)
    return text if rule.unless is None else f"{text}; unless {describe(rule.unless)}"


def _show(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return _one_of(value)
    return str(value).lower() if isinstance(value, bool) else str(value)

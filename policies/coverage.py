"""Does some rule match every possible contact? A pruned search over contact shapes.

Each contact fact (channel, segment, intent, language, needs, ...) is a
dimension whose values are grouped by the rules they allow, so only distinct
cases are tried. A branch stops as soon as a rule that ignores every remaining
dimension already matches it. Dimensions are treated as independent (a slight
over-approximation: e.g. calendar state and time of day), except that a contact
whose language is the home language always speaks it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TypeVar

from policies.matching import MatchIndex
from policies.report import Issue, error, warning
from policies.schema import PolicyDocument
from policies.vocabulary import Channel, Intent, Need, Segment

MAX_CASES = 200_000
MAX_EXAMPLES = 3
OTHER = "<other>"
V = TypeVar("V", str, Need)


@dataclass(frozen=True, slots=True)
class Value:
    label: str
    match: int
    unless: int


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    values: tuple[Value, ...]


def check_coverage(doc: PolicyDocument) -> Iterator[Issue]:
    if any(rule.is_catch_all() for rule in doc.rules):
        return
    search = _Search(doc)
    search.run(0, search.everyone, search.with_unless, {})
    if search.examples:
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in ex.items()) or "any contact" for ex in search.examples)
        yield error("rules", f"no rule matches some contacts, e.g. {shown}; "
                    "add a last rule with an empty match as a catch-all", "uncovered_contacts")
    elif search.cases > MAX_CASES:
        yield warning("rules", f"coverage check stopped after {MAX_CASES} cases; "
                      "add a last rule with an empty match to be sure", "coverage_incomplete")
    elif search.tags_singly:
        yield warning("rules", f"coverage check tried tags one at a time (over {_MAX_PAIRED} tags are named), "
                      "not a customer with several; add a last rule with an empty match to be sure",
                      "coverage_incomplete")


class _Search:
    def __init__(self, doc: PolicyDocument) -> None:
        n = len(doc.rules)
        matcher = MatchIndex([r.match for r in doc.rules])
        unless = MatchIndex([r.unless for r in doc.rules] if any(r.unless for r in doc.rules) else [None] * n)
        self.home = doc.home_language
        self.dims = [d for d in dimensions(matcher, unless, doc.home_language) if d.values]
        self.everyone = (1 << n) - 1
        self.with_unless = unless.present
        self.free_after = _free_after(self.dims, self.everyone & ~self.with_unless)
        self.examples: list[dict[str, str]] = []
        self.tags_singly = len({*matcher.tags, *unless.tags}) > _MAX_PAIRED
        self.cases = 0

    def run(self, depth: int, match: int, unless: int, chosen: dict[str, str]) -> None:
        self.cases += 1
        if len(self.examples) >= MAX_EXAMPLES or self.cases > MAX_CASES:
            return
        if match & self.free_after[depth]:
            return
        if depth == len(self.dims) or not match:
            if not match & ~unless:
                self.examples.append(dict(chosen))
            return
        dim = self.dims[depth]
        for value in dim.values:
            if self._impossible(dim.name, value.label, chosen):
                continue
            self.run(depth + 1, match & value.match, unless & value.unless, _with(chosen, dim, value))

    def _impossible(self, name: str, label: str, chosen: dict[str, str]) -> bool:
        """Only a group of just the home language rules out 'speaks no home language'."""
        return name == "speaks_home_language" and label == "false" and chosen.get("language") == self.home


def _with(chosen: dict[str, str], dim: Dimension, value: Value) -> dict[str, str]:
    return {**chosen, dim.name: value.label} if len(dim.values) > 1 else chosen


def _free_after(dims: Sequence[Dimension], candidates: int) -> list[int]:
    """free_after[d]: rules (without unless) that allow every value of every dimension from d on."""
    free = [candidates] * (len(dims) + 1)
    for d in range(len(dims) - 1, -1, -1):
        allow_all = candidates
        for value in dims[d].values:
            allow_all &= value.match
        free[d] = free[d + 1] & allow_all
    return free


def dimensions(m: MatchIndex, u: MatchIndex, home: str) -> list[Dimension]:
    languages = sorted({home, *m.language, *u.language}) + [OTHER]
    # A contact may have several needs or tags: with `unless`, a combination can be what no rule
    # takes (match deaf unless elderly, then anyone unless deaf: a deaf, elderly caller). Every
    # set of needs (there are four), and tags up to pairs (they are open-ended).
    needs = _sets_of(sorted({*m.needs, *u.needs}), len(Need))
    tags = _sets_of(sorted({*m.tags, *u.tags}), 2 if len({*m.tags, *u.tags}) <= _MAX_PAIRED else 1)
    lines: list[str | None] = [None, *sorted({*m.line, *u.line})]
    return [
        _dim("channel", [(c.value, m.channel[c], u.channel[c]) for c in Channel]),
        _dim("segment", [(s.value, m.segment[s], u.segment[s]) for s in Segment]),
        _dim("intent", [(i.value, m.intent[i], u.intent[i]) for i in Intent]),
        _dim("language", [(lang, m.language.get(lang, m.language_free), u.language.get(lang, u.language_free))
                          for lang in languages]),
        _dim("speaks_home_language", [(str(b).lower(), m.speaks[b], u.speaks[b]) for b in (True, False)]),
        _dim("needs", [("+".join(v) or "none", _any_of(m.needs, m.needs_free, v), _any_of(u.needs, u.needs_free, v))
                       for v in needs]),
        _dim("tags", [("+".join(v) or "none", _any_of(m.tags, m.tags_free, v), _any_of(u.tags, u.tags_free, v))
                      for v in tags]),
        _dim("repeat_count", [(str(c), m.repeat[min(c, len(m.repeat) - 1)], u.repeat[min(c, len(u.repeat) - 1)])
                              for c in range(max(len(m.repeat), len(u.repeat)))]),
        _dim("has_dedicated_agent", [(str(b).lower(), m.dedicated[b], u.dedicated[b]) for b in (False, True)]),
        _dim("dialled_line", [(v or "none", m.line.get(v, m.line_free) if v else m.line_free,
                               u.line.get(v, u.line_free) if v else u.line_free) for v in lines]),
        *_time_dimensions(m, u),
    ]


_MAX_PAIRED = 12  # with more named values than this, pairs would be too many: singles only


def _sets_of(named: Sequence[V], most: int) -> list[tuple[V, ...]]:
    """Every set of at most `most` of the named values (the values a contact's set may take)."""
    sets: list[tuple[V, ...]] = [()]
    for size in range(1, min(most, len(named)) + 1):
        sets.extend(combinations(named, size))
    return sets


def _any_of(listing: Mapping[V, int], free: int, values: Sequence[V]) -> int:
    """Rules that take a contact holding all of `values` (a condition is "any of these")."""
    mask = free
    for value in values:
        mask |= listing.get(value, 0)
    return mask


def _time_dimensions(m: MatchIndex, u: MatchIndex) -> list[Dimension]:
    dims = []
    for name in sorted({*m.calendars, *u.calendars}):
        label = f"calendar {name}" if name else "business_hours"
        mc, uc = m.calendars.get(name, (m.present, m.present)), u.calendars.get(name, (u.present, u.present))
        dims.append(_dim(label, [("open", mc[1], uc[1]), ("closed", mc[0], uc[0])]))
    if m.minutes is not None or u.minutes is not None:
        dims.append(_dim("time", [(f"{t // 60:02d}:{t % 60:02d}", _at(m.minutes, t, m.present),
                                   _at(u.minutes, t, u.present)) for t in range(1440)]))
    if m.weekdays is not None or u.weekdays is not None:
        days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        dims.append(_dim("day", [(days[d], _at(m.weekdays, d, m.present), _at(u.weekdays, d, u.present))
                                 for d in range(7)]))
    return dims


def _at(masks: list[int] | None, index: int, default: int) -> int:
    return default if masks is None else masks[index]


def _dim(name: str, values: Sequence[tuple[str, int, int]]) -> Dimension:
    """Keep one value per distinct (match, unless) pair: the others behave the same."""
    groups: dict[tuple[int, int], list[str]] = {}
    for label, match, unless in values:
        groups.setdefault((match, unless), []).append(label)
    return Dimension(name, tuple(Value(_group_label(labels), m, u) for (m, u), labels in groups.items()))


def _group_label(labels: list[str]) -> str:
    """'webchat|app|video': the values that behave alike; long groups are cut."""
    shown = "|".join(labels[:4])
    return shown + "|..." if len(labels) > 4 else shown

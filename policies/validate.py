"""Validation at `validate` and before every publish: schema errors, then static checks.

Every issue has a severity, a document path (`rules[3].escalate[1].overflow`)
and a message (`unknown queue 'vip2'`). Errors block a publish; warnings do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policies.checks import check_overflow_cycles, check_references, check_shadowing, check_steps
from policies.coverage import check_coverage
from policies.errors import PolicyInvalid, PolicyParseError
from policies.loader import document_from_data, parse_data
from policies.report import Issue, Severity, ValidationReport, error, report_of
from policies.roster import check_roster
from policies.schema import PolicyDocument
from policies.vocabulary import AgentProfile

__all__ = ["Issue", "Severity", "ValidationReport", "validate", "validate_document"]


def validate(
    source: str | Mapping[str, object] | PolicyDocument,
    roster: Sequence[AgentProfile] | None = None,
    content_type: str | None = None,
) -> ValidationReport:
    """Validate policy text (YAML/JSON), plain data or a document; never raises for a bad policy."""
    try:
        doc = _document(source, content_type)
    except PolicyParseError as exc:
        return report_of([error(exc.path, exc.message, "parse")])
    except PolicyInvalid as exc:
        return exc.report
    return validate_document(doc, roster)


def _document(source: str | Mapping[str, object] | PolicyDocument, content_type: str | None) -> PolicyDocument:
    if isinstance(source, PolicyDocument):
        return source
    data = parse_data(source, content_type) if isinstance(source, str) else dict(source)
    return document_from_data(data)


def validate_document(doc: PolicyDocument, roster: Sequence[AgentProfile] | None = None) -> ValidationReport:
    """Static checks of a schema-valid document; with a roster, also who could serve what."""
    references = list(check_references(doc))
    issues = references + list(check_overflow_cycles(doc)) + list(check_shadowing(doc))
    if not any(i.severity is Severity.ERROR for i in references):
        issues += list(check_steps(doc)) + list(check_coverage(doc))
        if roster is not None:
            issues += list(check_roster(doc, roster))
    return report_of(dict.fromkeys(issues))  # a defaults step is checked once per rule: report it once

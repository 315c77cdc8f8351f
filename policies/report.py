"""Validation reports: issues with a severity, a precise path and a message."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError
from pydantic_core import ErrorDetails


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Issue:
    severity: Severity
    path: str  # e.g. "rules[3].escalate[1].overflow"
    message: str  # e.g. "unknown queue 'vip2'"
    code: str = ""  # stable machine-readable kind, e.g. "unknown_queue"

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.severity.value}: {where}{self.message}"

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity.value, "path": self.path, "message": self.message, "code": self.code}


def error(path: str, message: str, code: str) -> Issue:
    return Issue(Severity.ERROR, path, message, code)


def warning(path: str, message: str, code: str) -> Issue:
    return Issue(Severity.WARNING, path, message, code)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    issues: tuple[Issue, ...] = ()

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings do not block a publish)."""
        return not self.errors

    def paths(self) -> list[str]:
        return [i.path for i in self.issues]

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "issues": [i.to_json() for i in self.issues],
        }

    def __add__(self, other: ValidationReport) -> ValidationReport:
        return ValidationReport(self.issues + other.issues)


def report_of(issues: Iterable[Issue]) -> ValidationReport:
    return ValidationReport(tuple(issues))


def format_loc(loc: Iterable[int | str]) -> str:
    """('rules', 3, 'escalate', 1, 'overflow') -> 'rules[3].escalate[1].overflow'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union[")) or part == "[key]":
            continue  # pydantic's own markers, not part of the document
        else:
            out += f".{part}" if out else str(part)
    return out


def schema_report(exc: ValidationError) -> ValidationReport:
    """pydantic's errors as issues, with document paths and plain messages.

    A list's "too short" error is left out when an error inside that list explains it.
    """
    issues = [_schema_issue(e) for e in exc.errors(include_url=False)]
    inner = {i.path for i in issues}
    return report_of(i for i in issues if not (i.code == "schema.too_short" and _has_inner(i.path, inner)))


def _has_inner(path: str, paths: set[str]) -> bool:
    return any(p.startswith(path + "[") for p in paths)


def _schema_issue(err: ErrorDetails) -> Issue:
    loc = tuple(err["loc"])
    kind = err["type"]
    message = err["msg"]
    if kind == "extra_forbidden":
        message = f"unknown field '{loc[-1]}'" if loc else "unknown field"
    elif kind == "missing":
        message = f"'{loc[-1]}' is required" if loc else "required"
    message = message.removeprefix("Value error, ").replace("Tuple should", "List should")
    if kind not in ("extra_forbidden", "missing", "value_error", "too_short") and "input" in err:
        message = f"{message} (got {_show(err['input'])})"
    return error(format_loc(loc), message, f"schema.{kind}")


_SHORT = reprlib.Repr()  # (keyword arguments need Python 3.12)
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxtuple = 3, 4, 4, 4
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 40


def _show(value: object) -> str:
    # reprlib, not repr: a refused value may be deep or huge, and only 60 characters are shown.
    text = _SHORT.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

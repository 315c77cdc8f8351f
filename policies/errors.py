"""The policy package's own errors: one tree, mapped to HTTP at the edge."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policies.validate import ValidationReport


class PolicyError(Exception):
    """Base of every error this package raises."""


class PolicyParseError(PolicyError):
    """The text is not well-formed YAML or JSON (or has duplicate keys)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class PolicyInvalid(PolicyError):
    """The document parsed but breaks the schema or a static check; carries the full report."""

    def __init__(self, report: ValidationReport) -> None:
        first = report.errors[0] if report.errors else None
        summary = f"{first.path}: {first.message}" if first else "invalid policy"
        super().__init__(summary)
        self.report = report

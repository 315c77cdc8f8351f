"""Customer directory import: JSON lines or CSV, validated line by line.

`parse_import(text, fmt)` never stops at a bad line: it returns the profiles that
passed and, for every other line, its number, the field at fault and why. Both
formats go through the same strict model (`CustomerRecord`), so a CSV cell and a
JSON value are held to the same rules. CSV lists are `;`-separated in one cell.

JSON lines (one object a line; blank lines are skipped):
  {"customer_id": "C1000123", "phone_numbers": ["+8613812345678"], "segment": "vip",
   "birth_date": "1958-04-02", "disabilities": ["blind"], "preferred_language": "zh",
   "languages": ["zh", "en"], "callback_windows": ["after 15:00"],
   "no_calls_from_unknown_numbers": true, "dedicated_agent": "a-017", "tags": ["payroll"]}
CSV (a header line naming the same fields; empty cells are absent):
  customer_id,phone_numbers,segment,birth_date,callback_windows
  C1000123,+8613812345678;+862150001234,vip,1958-04-02,after 15:00;09:00-10:00
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from policies.vocabulary import CallbackWindow, Segment

from .directory import CustomerProfile, Disability
from .native_base import E164, CustomerId, LanguageCode, error_message, json_path
from .video import SignLanguage

_WINDOW: Final = re.compile(r"(?:(after|before) )?([0-2][0-9]):([0-5][0-9])(?:-([0-2][0-9]):([0-5][0-9]))?")
_LIST_FIELDS: Final = frozenset({"phone_numbers", "disabilities", "languages", "callback_windows", "tags"})
_BOOLS: Final = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
EARLIEST_BIRTH_DATE: Final = date(1900, 1, 1)


def parse_window(spec: str) -> CallbackWindow:
    """'after 15:00', 'before 10:00' or '15:00-18:00' as minutes after local midnight."""
    match = _WINDOW.fullmatch(spec.strip())
    if match is None or (match[1] is None) == (match[4] is None):
        raise ValueError("a callback window is 'after HH:MM', 'before HH:MM' or 'HH:MM-HH:MM'")
    first = _minutes(match[2], match[3])
    if match[1] == "after":
        return _window(first, 24 * 60)
    if match[1] == "before":
        return _window(0, first)
    return _window(first, _minutes(match[4], match[5]))


def _minutes(hours: str, minutes: str) -> int:
    total = int(hours) * 60 + int(minutes)
    if total > 24 * 60:
        raise ValueError(f"{hours}:{minutes} is not a time of day")
    return total


def _window(start_min: int, end_min: int) -> CallbackWindow:
    if not start_min < end_min:
        raise ValueError("a callback window must end after it starts")
    return CallbackWindow(start_min, end_min)


def _check_window(spec: str) -> str:
    parse_window(spec)
    return spec


WindowSpec = Annotated[str, StringConstraints(max_length=32), AfterValidator(_check_window)]
AgentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_:-]{0,63}$")]


class CustomerRecord(BaseModel):
    """One line of an import, before it becomes a CustomerProfile."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    customer_id: CustomerId
    phone_numbers: list[E164] = Field(default_factory=list, max_length=10)
    segment: Segment = Segment.MASS
    birth_date: date | None = None
    disabilities: list[Disability] = Field(default_factory=list, max_length=2)
    preferred_language: LanguageCode | None = None
    languages: list[LanguageCode] = Field(default_factory=list, max_length=16)
    sign_language: SignLanguage | None = None
    callback_windows: list[WindowSpec] = Field(default_factory=list, max_length=8)
    no_calls_from_unknown_numbers: bool = False
    dedicated_agent: AgentId | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=32)

    @field_validator("birth_date")
    @classmethod
    def _plausible_birth_date(cls, value: date | None, info: ValidationInfo) -> date | None:
        today = (info.context or {}).get("today")
        if value is not None and value < EARLIEST_BIRTH_DATE:
            raise ValueError(f"birth date before {EARLIEST_BIRTH_DATE.isoformat()}")
        if value is not None and today is not None and value > today:
            raise ValueError("birth date in the future")
        return value

    def to_profile(self) -> CustomerProfile:
        preferred = {self.preferred_language} if self.preferred_language else set()
        return CustomerProfile(
            customer_id=self.customer_id,
            phone_numbers=tuple(dict.fromkeys(self.phone_numbers)),
            segment=self.segment,
            birth_date=self.birth_date,
            disabilities=frozenset(self.disabilities),
            preferred_language=self.preferred_language,
            languages=frozenset(self.languages) | preferred,
            sign_language=self.sign_language,
            callback_windows=tuple(parse_window(spec) for spec in self.callback_windows),
            no_calls_from_unknown_numbers=self.no_calls_from_unknown_numbers,
            dedicated_agent=self.dedicated_agent,
            tags=frozenset(self.tags),
        )


RECORD_FIELDS: Final = tuple(CustomerRecord.model_fields)


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line: int  # 1-based, as an editor shows it
    field: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    accepted: tuple[CustomerProfile, ...]
    rejected: tuple[RejectedLine, ...]

    def to_data(self) -> dict[str, Any]:
        return {
            "accepted": len(self.accepted),
            "rejected": [{"line": r.line, "field": r.field, "message": r.message} for r in self.rejected],
        }


_Line = tuple[int, bytes | Mapping[str, Any] | RejectedLine]


def parse_import(text: str, fmt: Literal["jsonl", "csv"], *, today: date | None = None) -> ImportReport:
    """Validate every line; a customer id seen twice keeps its first line, the later are rejected."""
    text = text.removeprefix("\ufeff")  # a byte-order mark from spreadsheet exports
    lines = _jsonl_lines(text) if fmt == "jsonl" else _csv_lines(text)
    accepted: dict[str, tuple[int, CustomerProfile]] = {}
    rejected: list[RejectedLine] = []
    for number, content in lines:
        outcome = content if isinstance(content, RejectedLine) else _validate(number, content, today)
        if isinstance(outcome, CustomerProfile) and outcome.customer_id in accepted:
            first = accepted[outcome.customer_id][0]
            outcome = RejectedLine(number, "customer_id", f"duplicate customer_id (first on line {first})")
        if isinstance(outcome, RejectedLine):
            rejected.append(outcome)
        else:
            accepted[outcome.customer_id] = (number, outcome)
    return ImportReport(tuple(p for _, p in accepted.values()), tuple(rejected))


def _validate(number: int, content: bytes | Mapping[str, Any], today: date | None) -> CustomerProfile | RejectedLine:
    raw = content if isinstance(content, bytes) else orjson.dumps(content)
    try:
        record = CustomerRecord.model_validate_json(raw, context={"today": today})
    except ValidationError as exc:
        return _rejection(number, exc)
    return record.to_profile()


def _rejection(number: int, exc: ValidationError) -> RejectedLine:
    first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    kind = first["type"]
    if kind == "json_invalid":
        return RejectedLine(number, None, "not valid JSON")
    if kind == "model_type":
        return RejectedLine(number, None, "each line must be a JSON object")
    return RejectedLine(number, json_path(first["loc"]), error_message(kind, first["msg"]))


def _jsonl_lines(text: str) -> Iterator[_Line]:
    # Split on "\n" only: str.splitlines() also splits on U+2028, which JSON allows in strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line.rstrip("\r").encode()


# The csv module refuses a cell over 128 KiB by default, raising out of the whole parse; a
# cell is never longer than the body, and a long one is refused as a value, line by line.
_CSV_CELL_LIMIT: Final = 64 * 1024 * 1024


def _csv_lines(text: str) -> Iterator[_Line]:
    if csv.field_size_limit() < _CSV_CELL_LIMIT:
        csv.field_size_limit(_CSV_CELL_LIMIT)
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\x00extra")
    try:
        header_problem = _check_header(reader.fieldnames)
        if header_problem is not None:
            yield 1, header_problem
            return
        for row in reader:
            if any(value and value.strip() for value in _cells(row)):
                yield reader.line_num, _csv_row(reader.line_num, row)
    except csv.Error as exc:  # the reader cannot go on past this: say where it stopped
        yield max(reader.line_num, 1), RejectedLine(max(reader.line_num, 1), None,
                                                    f"unreadable CSV from here on ({exc}); no later line was read")


def _check_header(fieldnames: Sequence[str] | None) -> RejectedLine | None:
    if not fieldnames:
        return RejectedLine(1, None, "a CSV import needs a header line")
    names = [name.strip() for name in fieldnames]
    unknown = [name for name in names if name not in RECORD_FIELDS]
    if unknown:
        return RejectedLine(1, unknown[0], "unknown column")
    repeated = [name for name in names if names.count(name) > 1]
    if repeated:
        return RejectedLine(1, repeated[0], "column given twice")
    if "customer_id" not in names:
        return RejectedLine(1, "customer_id", "the customer_id column is required")
    return None


def _cells(row: Mapping[str | None, Any]) -> Iterator[str]:
    for value in row.values():
        yield from (value if isinstance(value, list) else [value or ""])


def _csv_row(number: int, row: Mapping[str, Any]) -> Mapping[str, Any] | RejectedLine:
    if "\x00extra" in row:
        return RejectedLine(number, None, "more cells than header columns")
    return {name.strip(): _cell(name.strip(), value.strip()) for name, value in row.items() if value and value.strip()}


def _cell(name: str, value: str) -> Any:
    if name in _LIST_FIELDS:
        return [item.strip() for item in value.split(";") if item.strip()]
    if name == "no_calls_from_unknown_numbers":
        return _BOOLS.get(value.lower(), value)
    return value

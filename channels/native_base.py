"""Building blocks shared by the four gateways' native payload models.

Every native model is strict (no coercion, no unknown fields, bounded sizes) and
frozen. The constrained string types here carry their own JSON-schema patterns,
so the OpenAPI document shows gateway developers exactly what is accepted.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

# A gateway's own event id: opaque to us, but bounded and printable.
EventId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"),
    Field(description="The gateway's own id for this event; a re-post with the same id is a retry."),
]
# A gateway session id (call id, chat session id, video room id, conversation id).
SessionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
CustomerId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"),
    Field(description="The bank's customer number (as in the customer directory)."),
]
# E.164: a plus, a country code not starting with 0, 7 to 15 digits in all.
E164 = Annotated[
    str,
    StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$"),
    Field(description="E.164 phone number, e.g. +8613812345678."),
]
# A dialled number: a short service code (95588) or a full E.164 number.
DialledNumber = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{3,15}$")]
LanguageCode = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]{2,3}$"),
    Field(description="ISO 639 language code, lower case, e.g. zh, en, ja, ko."),
]
# A gateway clock years off is a fault; so is a date at the edge of what Python can count
# with (year 1 or 9999: the 7-day repeat window would overflow on it). Refused at the edge.
EARLIEST_OCCURRED_AT: Final = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST_OCCURRED_AT: Final = datetime(2100, 1, 1, tzinfo=timezone.utc)


def _plausible(moment: datetime) -> datetime:
    if not EARLIEST_OCCURRED_AT <= moment < LATEST_OCCURRED_AT:
        raise ValueError("must be in the years 2000 to 2099")
    return moment


_RFC3339_START: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_text(value: object, parse: ValidatorFunctionWrapHandler) -> object:
    # pydantic would also take a number, or a text of digits, as unix seconds: a gateway
    # sending those sends something else than it thinks (the contract says RFC 3339). The
    # text is then parsed in lax mode (`Strict(False)`): strict mode takes only datetime
    # objects from Python, and a wrap validator's input counts as Python.
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-11-23T09:30:00+08:00")
    return parse(value)


OccurredAt = Annotated[
    AwareDatetime,
    Strict(False),
    WrapValidator(_rfc3339_text),
    AfterValidator(_plausible),
    Field(description="When it happened at the gateway, RFC 3339 with an offset, in the years 2000 to 2099."),
]
MessageText = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[int, Field(ge=0, le=86_400)]

# BCP 47, the subset browsers and phones send: language, optional script, optional region.
_LOCALE: Final = re.compile(r"([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|[0-9]{3}))?")


def _canonical_locale(value: str) -> str:
    match = _LOCALE.fullmatch(value)
    if match is None:
        raise ValueError("not a locale like zh-CN, en-US, zh-Hans-CN or ja")
    language, script, region = match.groups()
    parts = [language.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)


Locale = Annotated[
    str,
    StringConstraints(max_length=16),
    AfterValidator(_canonical_locale),
    Field(
        description="BCP 47 locale (language[-Script][-REGION]); case and '_' are normalised.",
        json_schema_extra={"pattern": f"^{_LOCALE.pattern}$"},
    ),
]


def json_path(loc: tuple[int | str, ...]) -> str | None:
    """A pydantic error location as a JSON path: ('a', 3, 'b') -> 'a[3].b'; () -> None."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None


def error_message(kind: str, pydantic_message: str) -> str:
    """A pydantic error message for an API answer, without pydantic's own prefixes."""
    if kind == "extra_forbidden":
        return "unexpected field"
    if kind == "missing":
        return "field required"
    return pydantic_message.removeprefix("Value error, ")


def locale_language(locale: str) -> str:
    """The language part of a canonical locale: 'zh-Hans-CN' -> 'zh'."""
    return locale.split("-", 1)[0]


class NativeModel(BaseModel):
    """Base of every native payload and its parts: strict, closed and immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NativeEventBase(NativeModel):
    """Fields every native event carries, whatever its gateway."""

    event_id: EventId
    occurred_at: OccurredAt

    @property
    def gateway_session_id(self) -> str:
        """The gateway's id of the session this event belongs to (a call, a chat...)."""
        raise NotImplementedError

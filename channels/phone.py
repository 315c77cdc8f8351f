"""Native events of the telephony/IVR gateway (the 95xxx hotline).

A call's life at the gateway: `call.started` when the network delivers it,
`ivr.completed` when the caller has picked a language and a menu item (callers on
the elderly line, or known to be 60+, skip the menu: the router puts them through
to a human at `call.started`), `call.hung_up` when a party hangs up, and
`call.ended` once the gateway has torn the call down.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from .native_base import (
    E164,
    CustomerId,
    DialledNumber,
    LanguageCode,
    NativeEventBase,
    NativeModel,
    Seconds,
    SessionId,
)

DialledLine = Literal["main", "elderly", "english"]
IvrIntent = Literal["lost_card", "fraud", "credit_card", "loan", "complaint", "speak_to_agent"]
HangupCause = Literal["normal_clearing", "originator_cancel", "no_answer", "network_failure", "timeout"]
MenuKey = Annotated[str, StringConstraints(pattern=r"^[0-9*#]$")]
TrunkId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class PhoneCaller(NativeModel):
    number: E164 | None = Field(default=None, description="Calling number; null when the network withheld it.")
    presentation: Literal["allowed", "restricted"] = "allowed"


class PhoneDialled(NativeModel):
    number: DialledNumber = Field(description="The number the caller dialled, e.g. 95588 or +862195588.")
    line: DialledLine = Field(description="Which hotline that number is: main, elderly or English.")


class PhoneIvrResult(NativeModel):
    language: LanguageCode = Field(description="The language the caller chose in the IVR.")
    intent: IvrIntent = Field(description="The menu item the caller chose.")
    menu_path: list[MenuKey] = Field(default_factory=list, max_length=16)
    verified_customer_id: CustomerId | None = Field(
        default=None, description="Set when the caller identified in the IVR (card number and PIN)."
    )
    duration_s: Seconds = Field(description="Seconds the caller spent in the IVR.")


_CALL_ID = "c-20250314-0930-7f3a9c"


class PhoneCallStarted(NativeEventBase):
    """The gateway answered an inbound call."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "tel-sh01-000000184467",
                    "event_type": "call.started",
                    "occurred_at": "2025-03-14T09:30:12.345+08:00",
                    "call_id": _CALL_ID,
                    "caller": {"number": "+8613812345678", "presentation": "allowed"},
                    "dialled": {"number": "95588", "line": "main"},
                    "trunk_id": "sip-sh-01",
                }
            ]
        }
    )

    event_type: Literal["call.started"]
    call_id: SessionId
    caller: PhoneCaller
    dialled: PhoneDialled
    trunk_id: TrunkId | None = None

    @property
    def gateway_session_id(self) -> str:
        return self.call_id


class PhoneIvrCompleted(NativeEventBase):
    """The caller finished the IVR menu and asked for something."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "tel-sh01-000000184471",
                    "event_type": "ivr.completed",
                    "occurred_at": "2025-03-14T09:30:47.020+08:00",
                    "call_id": _CALL_ID,
                    "ivr": {
                        "language": "zh",
                        "intent": "lost_card",
                        "menu_path": ["1", "3"],
                        "verified_customer_id": "C1000123",
                        "duration_s": 34,
                    },
                }
            ]
        }
    )

    event_type: Literal["ivr.completed"]
    call_id: SessionId
    ivr: PhoneIvrResult

    @property
    def gateway_session_id(self) -> str:
        return self.call_id


class PhoneCallHungUp(NativeEventBase):
    """A party hung up (the caller, the agent, or the gateway itself)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "tel-sh01-000000184502",
                    "event_type": "call.hung_up",
                    "occurred_at": "2025-03-14T09:32:05.881+08:00",
                    "call_id": _CALL_ID,
                    "party": "caller",
                    "cause": "normal_clearing",
                }
            ]
        }
    )

    event_type: Literal["call.hung_up"]
    call_id: SessionId
    party: Literal["caller", "agent", "system"]
    cause: HangupCause = "normal_clearing"

    @property
    def gateway_session_id(self) -> str:
        return self.call_id


class PhoneCallEnded(NativeEventBase):
    """The gateway tore the call down; the last event of every call."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "tel-sh01-000000184503",
                    "event_type": "call.ended",
                    "occurred_at": "2025-03-14T09:32:06.002+08:00",
                    "call_id": _CALL_ID,
                    "duration_s": 114,
                    "cause": "normal_clearing",
                }
            ]
        }
    )

    event_type: Literal["call.ended"]
    call_id: SessionId
    duration_s: Seconds
    cause: HangupCause = "normal_clearing"

    @property
    def gateway_session_id(self) -> str:
        return self.call_id


PhoneEvent = Annotated[
    PhoneCallStarted | PhoneIvrCompleted | PhoneCallHungUp | PhoneCallEnded,
    Field(discriminator="event_type"),
]

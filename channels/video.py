"""Native events of the sign-language video desk (the video-relay platform).

A deaf or hard-of-hearing customer asks for a signing agent
(`video.requested`, with the sign language as an ISO 639-3 code); the room
closes (`video.ended`). There is no bot: the request goes straight to a human.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field

from .native_base import CustomerId, NativeEventBase, NativeModel, SessionId

# ISO 639-3 codes of the sign languages the desk can take.
SignLanguage = Literal["csl", "hks", "tss", "ase", "bfi", "jsl", "kvk"]
SIGN_LANGUAGE_NAMES: Final[dict[str, str]] = {
    "csl": "Chinese Sign Language",
    "hks": "Hong Kong Sign Language",
    "tss": "Taiwan Sign Language",
    "ase": "American Sign Language",
    "bfi": "British Sign Language",
    "jsl": "Japanese Sign Language",
    "kvk": "Korean Sign Language",
}
# The written language that goes with each sign language (for chat side-channels).
SIGN_LANGUAGE_WRITTEN: Final[dict[str, str]] = {
    "csl": "zh",
    "hks": "zh",
    "tss": "zh",
    "ase": "en",
    "bfi": "en",
    "jsl": "ja",
    "kvk": "ko",
}
_ROOM = "vr-room-4471"


class VideoRoom(NativeModel):
    room_id: SessionId
    device: Literal["app", "web", "branch_kiosk"]


class VideoRequested(NativeEventBase):
    """A customer asked for a sign-language video agent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "vr-evt-000731",
                    "event_type": "video.requested",
                    "occurred_at": "2025-03-14T14:20:00+08:00",
                    "room": {"room_id": _ROOM, "device": "app"},
                    "sign_language": "csl",
                    "customer_id": "C3000789",
                }
            ]
        }
    )

    event_type: Literal["video.requested"]
    room: VideoRoom
    sign_language: SignLanguage = Field(description="ISO 639-3 code, e.g. csl (Chinese Sign Language).")
    customer_id: CustomerId | None = Field(default=None, description="Null for a walk-in at a kiosk.")

    @property
    def gateway_session_id(self) -> str:
        return self.room.room_id


class VideoEnded(NativeEventBase):
    """The video room closed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "vr-evt-000779",
                    "event_type": "video.ended",
                    "occurred_at": "2025-03-14T14:31:12+08:00",
                    "room_id": _ROOM,
                    "ended_by": "customer",
                }
            ]
        }
    )

    event_type: Literal["video.ended"]
    room_id: SessionId
    ended_by: Literal["customer", "agent", "network", "timeout"]

    @property
    def gateway_session_id(self) -> str:
        return self.room_id


VideoEvent = Annotated[VideoRequested | VideoEnded, Field(discriminator="event_type")]

"""Native events of the web-chat server.

A chat starts with the bank's bot (`session.started`); messages flow
(`message.created`); the bot hands the visitor to a human (`bot.handoff`); the
session closes (`session.closed`). `visitor.customer_id` is set when the visitor
is logged in to online banking.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from .native_base import CustomerId, Locale, MessageText, NativeEventBase, NativeModel, SessionId, ShortText
from .native_bot import BotHandoff


def _parsable_url(value: str) -> str:
    """The pattern lets 'http://[' through; the adapter splits the URL, so it must split."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError("not a valid http(s) URL") from None
    if not parts.hostname:
        raise ValueError("not a valid http(s) URL: it names no host")
    return value


PageUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]{1,2040}$"), AfterValidator(_parsable_url)]
_SESSION = "wc-5d1e77b0c3"


class WebchatVisitor(NativeModel):
    visitor_id: SessionId
    locale: Locale
    customer_id: CustomerId | None = Field(default=None, description="Set when the visitor is logged in.")


class WebchatPage(NativeModel):
    url: PageUrl
    title: ShortText | None = None


class WebchatMessage(NativeModel):
    message_id: SessionId
    author: Literal["visitor", "bot"]
    text: MessageText


class WebchatSessionStarted(NativeEventBase):
    """A visitor opened the chat window."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "wc-evt-8a41f2",
                    "event_type": "session.started",
                    "occurred_at": "2025-03-14T10:02:03Z",
                    "session_id": _SESSION,
                    "visitor": {"visitor_id": "v-90f3aa", "locale": "en-US", "customer_id": "C2000456"},
                    "page": {"url": "https://www.bank.example/cards/credit/limit", "title": "Credit limit"},
                }
            ]
        }
    )

    event_type: Literal["session.started"]
    session_id: SessionId
    visitor: WebchatVisitor
    page: WebchatPage

    @property
    def gateway_session_id(self) -> str:
        return self.session_id


class WebchatMessageCreated(NativeEventBase):
    """A visitor (or the bot) wrote a message."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "wc-evt-8a41f9",
                    "event_type": "message.created",
                    "occurred_at": "2025-03-14T10:02:31Z",
                    "session_id": _SESSION,
                    "message": {
                        "message_id": "m-000012",
                        "author": "visitor",
                        "text": "I want to raise my credit card limit before a trip",
                    },
                }
            ]
        }
    )

    event_type: Literal["message.created"]
    session_id: SessionId
    message: WebchatMessage

    @property
    def gateway_session_id(self) -> str:
        return self.session_id


class WebchatBotHandoff(NativeEventBase):
    """The bot handed the visitor over to a human."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "wc-evt-8a4210",
                    "event_type": "bot.handoff",
                    "occurred_at": "2025-03-14T10:03:10Z",
                    "session_id": _SESSION,
                    "handoff": {
                        "bot_id": "webbot-3",
                        "detected_intent": "credit_card",
                        "confidence": 0.82,
                        "reason": "customer_asked",
                        "transcript": [
                            {
                                "author": "customer",
                                "text": "I want to raise my credit card limit before a trip",
                                "sent_at": "2025-03-14T10:02:31Z",
                            },
                            {
                                "author": "bot",
                                "text": "I can help with that. Which card is it about?",
                                "sent_at": "2025-03-14T10:02:32Z",
                            },
                            {
                                "author": "customer",
                                "text": "Let me talk to a person",
                                "sent_at": "2025-03-14T10:03:08Z",
                            },
                        ],
                    },
                }
            ]
        }
    )

    event_type: Literal["bot.handoff"]
    session_id: SessionId
    handoff: BotHandoff

    @property
    def gateway_session_id(self) -> str:
        return self.session_id


class WebchatSessionClosed(NativeEventBase):
    """The chat session closed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "wc-evt-8a42c4",
                    "event_type": "session.closed",
                    "occurred_at": "2025-03-14T10:15:40Z",
                    "session_id": _SESSION,
                    "closed_by": "visitor",
                }
            ]
        }
    )

    event_type: Literal["session.closed"]
    session_id: SessionId
    closed_by: Literal["visitor", "agent", "bot", "timeout", "system"]

    @property
    def gateway_session_id(self) -> str:
        return self.session_id


WebchatEvent = Annotated[
    WebchatSessionStarted | WebchatMessageCreated | WebchatBotHandoff | WebchatSessionClosed,
    Field(discriminator="event_type"),
]

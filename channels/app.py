"""Native events of the mobile-app backend (in-app messaging).

App users are always logged in: `user.user_id` is the bank's customer number.
The conversation starts with the bot (`conversation.opened`), messages flow
(`message.created`), the bot hands over (`bot.handoff`), and it closes
(`conversation.closed`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from .native_base import CustomerId, Locale, MessageText, NativeEventBase, NativeModel, SessionId
from .native_bot import BotHandoff

AppVersion = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}(\.[0-9]{1,4}){0,3}$")]
Screen = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_./-]{0,99}$")]
_CONVERSATION = "conv-01HQ7ZP3K9"


class AppUser(NativeModel):
    user_id: CustomerId = Field(description="The logged-in user's customer number.")
    locale: Locale


class AppClient(NativeModel):
    platform: Literal["ios", "android", "harmonyos"]
    version: AppVersion
    screen: Screen | None = Field(default=None, description="The screen the user opened the chat from.")


class AppMessage(NativeModel):
    message_id: SessionId
    sender: Literal["customer", "bot"]
    text: MessageText


class AppConversationOpened(NativeEventBase):
    """The user opened a conversation in the app."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "app-evt-5f0c21",
                    "event_type": "conversation.opened",
                    "occurred_at": "2025-03-14T20:45:09+08:00",
                    "conversation_id": _CONVERSATION,
                    "user": {"user_id": "C1000123", "locale": "zh-Hans-CN"},
                    "client": {"platform": "android", "version": "8.2.1", "screen": "cards/detail"},
                }
            ]
        }
    )

    event_type: Literal["conversation.opened"]
    conversation_id: SessionId
    user: AppUser
    client: AppClient

    @property
    def gateway_session_id(self) -> str:
        return self.conversation_id


class AppMessageCreated(NativeEventBase):
    """The customer (or the bot) wrote a message."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "app-evt-5f0c2a",
                    "event_type": "message.created",
                    "occurred_at": "2025-03-14T20:45:30+08:00",
                    "conversation_id": _CONVERSATION,
                    "message": {"message_id": "am-0003", "sender": "customer", "text": "我的卡好像被盗刷了"},
                }
            ]
        }
    )

    event_type: Literal["message.created"]
    conversation_id: SessionId
    message: AppMessage

    @property
    def gateway_session_id(self) -> str:
        return self.conversation_id


class AppBotHandoff(NativeEventBase):
    """The bot handed the user over to a human."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "app-evt-5f0c31",
                    "event_type": "bot.handoff",
                    "occurred_at": "2025-03-14T20:45:41+08:00",
                    "conversation_id": _CONVERSATION,
                    "handoff": {
                        "bot_id": "appbot-2",
                        "detected_intent": "fraud",
                        "confidence": 0.93,
                        "reason": "sensitive_topic",
                        "transcript": [
                            {
                                "author": "customer",
                                "text": "我的卡好像被盗刷了",
                                "sent_at": "2025-03-14T20:45:30+08:00",
                            },
                            {
                                "author": "bot",
                                "text": "正在为您转接人工客服，请稍候。",
                                "sent_at": "2025-03-14T20:45:31+08:00",
                            },
                        ],
                    },
                }
            ]
        }
    )

    event_type: Literal["bot.handoff"]
    conversation_id: SessionId
    handoff: BotHandoff

    @property
    def gateway_session_id(self) -> str:
        return self.conversation_id


class AppConversationClosed(NativeEventBase):
    """The conversation closed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "app-evt-5f0d90",
                    "event_type": "conversation.closed",
                    "occurred_at": "2025-03-14T21:02:13+08:00",
                    "conversation_id": _CONVERSATION,
                    "closed_by": "customer",
                }
            ]
        }
    )

    event_type: Literal["conversation.closed"]
    conversation_id: SessionId
    closed_by: Literal["customer", "agent", "bot", "timeout", "system"]

    @property
    def gateway_session_id(self) -> str:
        return self.conversation_id


AppEvent = Annotated[
    AppConversationOpened | AppMessageCreated | AppBotHandoff | AppConversationClosed,
    Field(discriminator="event_type"),
]

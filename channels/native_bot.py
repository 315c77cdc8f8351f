"""The bot hand-off block that the web-chat server and the app backend both send.

Both run the bank's chat bot; when it gives up (or the customer asks for a
person) the gateway posts the bot's transcript and what the bot thinks the
customer wants.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints

from policies.vocabulary import Intent

from .native_base import Confidence, NativeModel, OccurredAt

BotIntent = Literal["lost_card", "fraud", "credit_card", "loan", "wealth", "complaint", "agent_request", "unknown"]
BotId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
MAX_TRANSCRIPT_LINES: Final = 50
MAX_TRANSCRIPT_LINE_CHARS: Final = 1000

_INTENTS: Final[dict[str, Intent]] = {
    "lost_card": Intent.LOST_CARD,
    "fraud": Intent.FRAUD,
    "credit_card": Intent.CREDIT_CARD,
    "loan": Intent.LOAN,
    "wealth": Intent.WEALTH,
    "complaint": Intent.COMPLAINT,
    "agent_request": Intent.SPEAK_TO_AGENT,
    "unknown": Intent.GENERAL,
}


class BotTranscriptLine(NativeModel):
    author: Literal["customer", "bot"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TRANSCRIPT_LINE_CHARS)]
    sent_at: OccurredAt


class BotHandoff(NativeModel):
    bot_id: BotId
    detected_intent: BotIntent = Field(description="What the bot thinks the customer wants.")
    confidence: Confidence
    reason: Literal["customer_asked", "low_confidence", "sensitive_topic", "policy"]
    transcript: list[BotTranscriptLine] = Field(default_factory=list, max_length=MAX_TRANSCRIPT_LINES)


def bot_intent(detected: str) -> Intent:
    """The router's intent for a bot's label ('agent_request' -> speak_to_agent)."""
    return _INTENTS[detected]

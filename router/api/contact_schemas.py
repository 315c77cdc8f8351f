"""JSON Schemas of what the contact and import endpoints answer, for the OpenAPI document.

Requests are described by the pydantic models that validate them; these answers are built
by hand-written `to_data` functions, so their shapes are written here once, beside the
enums they use, and the e2e tests validate real answers against them (a field added to an
answer and not here fails there).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from channels.customer_import import CustomerRecord
from channels.native import COMPONENTS_REF
from channels.view import ContactStatus
from policies.vocabulary import Channel, Intent, Need, Segment

_TEXT: dict[str, Any] = {"type": ["string", "null"]}
_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}


def _enum(values: type[StrEnum], *, nullable: bool = False) -> dict[str, Any]:
    names: list[Any] = [v.value for v in values]
    return {"type": ["string", "null"], "enum": [*names, None]} if nullable else {"type": "string", "enum": names}


def _object(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": [name for name in properties if name not in optional]}


CONTACT_FACTS_SCHEMA = _object({
    "contact_id": {"type": "string"},
    "channel": _enum(Channel),
    "customer_id": _TEXT,
    "segment": _enum(Segment),
    "language": {"type": "string"},
    "languages": {"type": "array", "items": {"type": "string"}},
    "needs": {"type": "array", "items": _enum(Need)},
    "intent": _enum(Intent),
    "repeat_count": {"type": "integer", "minimum": 1},
    "sign_language": _TEXT,
    "tags": {"type": "array", "items": {"type": "string"}},
    "dedicated_agent": _TEXT,
    "callback_windows": {"type": "array", "items": _object({"start_min": {"type": "integer"},
                                                             "end_min": {"type": "integer"}})},
    "dialled_line": _TEXT,
})

CONTACT_VIEW_SCHEMA = _object({
    "contact_id": {"type": "string"},
    "channel": _enum(Channel),
    "status": {**_enum(ContactStatus), "description": "pending (only out-of-order events so far), self_service "
               "(IVR or bot), waiting (wants an agent), connected, abandoned or ended (both final)"},
    "version": {"type": "integer", "description": "the contact stream's version"},
    "gateway_session_id": _TEXT,
    "customer_id": _TEXT,
    "caller": {**_TEXT, "description": "the caller's number, masked"},
    "dialled_line": _TEXT,
    "locale": _TEXT,
    "entry_point": _TEXT,
    "facts": {"oneOf": [{"$ref": COMPONENTS_REF.format(model="ContactFacts")}, {"type": "null"}],
              "description": "what routing knows of the contact, from its arrival"},
    "intent_source": _TEXT,
    "handed_off": {"type": "boolean"},
    "message_count": {"type": "integer", "minimum": 0},
    "opened_at": _TIME, "arrived_at": _TIME, "abandoned_at": _TIME, "ended_at": _TIME, "last_event_at": _TIME,
    "waited_s": {"type": ["number", "null"]},
    "ended_by": _TEXT,
    "end_cause": _TEXT,
})

HISTORY_ENTRY_SCHEMA = _object({
    "event_id": {"type": "string", "format": "uuid"},
    "version": {"type": "integer", "minimum": 1},
    "position": {"type": "integer", "minimum": 1},
    "type": {"type": "string"},
    "recorded_at": {"type": "string", "format": "date-time"},
    "data": {"type": "object", "description": "the event's data; message texts, transcripts and phone numbers "
                                             "are left out"},
    "metadata": {"type": "object", "description": "correlation_id, causation_id, actor, channel, received_at, ..."},
})

CONTACT_ANSWER_SCHEMA = _object({
    "contact": {"oneOf": [{"$ref": COMPONENTS_REF.format(model="ContactView")}, {"type": "null"}],
                "description": "null while the stream holds only events this view does not know"},
    "events": {"type": "array", "items": {"$ref": COMPONENTS_REF.format(model="ContactHistoryEntry")}},
})

_REJECTED_LINE = _object({
    "line": {"type": "integer", "minimum": 1, "description": "1-based, as an editor shows it"},
    "field": {**_TEXT, "description": "the field or column at fault; null when the whole line is"},
    "message": {"type": "string"},
})

IMPORT_REPORT_SCHEMA = _object({
    "accepted": {"type": "integer", "minimum": 0, "description": "valid lines (profiles)"},
    "rejected": {"type": "array", "items": _REJECTED_LINE},
    "stored": {"type": "integer", "minimum": 0, "description": "new or changed profiles stored"},
    "unchanged": {"type": "integer", "minimum": 0, "description": "profiles stored already, exactly so"},
}, optional=("stored", "unchanged"))


def component_schemas() -> dict[str, dict[str, Any]]:
    record = CustomerRecord.model_json_schema(ref_template=COMPONENTS_REF)
    defs = record.pop("$defs", {})
    return {**defs, "CustomerRecord": record, "ContactFacts": CONTACT_FACTS_SCHEMA, "ContactView": CONTACT_VIEW_SCHEMA,
            "ContactHistoryEntry": HISTORY_ENTRY_SCHEMA, "ContactAnswer": CONTACT_ANSWER_SCHEMA,
            "CustomerImportReport": IMPORT_REPORT_SCHEMA}

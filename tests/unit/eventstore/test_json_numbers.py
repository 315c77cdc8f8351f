"""Event payloads are JSON that PostgreSQL can store: a NaN or an infinity anywhere is
refused, and so is the NUL character in any text (jsonb cannot hold it), everything else
kept. The store's checks walk only payloads whose JSON could hide one; they must agree with
a strict JSON encoder and a plain walk on every nesting."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.errors import InvalidAppendError
from eventstore.model import _to_json

# What orjson accepts (64-bit integers, text without lone surrogates); the rest is refused
# as not serialisable, which other tests cover.
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
_leaves = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | _text
           | st.floats(allow_nan=True, allow_infinity=True))
_values = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                       | st.dictionaries(_text, inner, max_size=4), max_leaves=20)


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_nul(v) for v in value)
    return False


@settings(max_examples=300, derandomize=True)
@given(st.dictionaries(_text, _values, max_size=6))
def test_refused_exactly_when_a_strict_encoder_refuses(payload: dict[str, object]) -> None:
    try:
        json.dumps(payload, allow_nan=False)
        strict_ok = not _holds_nul(payload)
    except ValueError:
        strict_ok = False
    if strict_ok:
        assert json.loads(_to_json(payload, 0, "data")) == json.loads(json.dumps(payload))
    else:
        with pytest.raises(InvalidAppendError) as refused:
            _to_json(payload, 0, "data")
        assert refused.value.field == "events[0].data"

"""Policy text (YAML or JSON) to a `PolicyDocument`, and the bundled default policy."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError

from policies.errors import PolicyInvalid, PolicyParseError
from policies.report import schema_report
from policies.schema import PolicyDocument

JSON_TYPES = frozenset({"application/json", "text/json"})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
DEFAULT_POLICY_FILE = "default.yaml"


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys (a silently overwritten rule is a routing bug) and
    aliases: nested `*alias` references make a few hundred bytes stand for billions of values
    (a 492-byte body held the server for 5 s, and each level multiplies it), and a policy is
    short enough to write out."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            mark = event.start_mark
            raise PolicyParseError(f"YAML aliases (*{event.anchor}) are not accepted in a policy: write the value "
                                   f"out (line {mark.line + 1}, column {mark.column + 1})")
        return super().compose_node(parent, index)


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise PolicyParseError(f"duplicate key '{key}' at line {mark.line + 1}, column {mark.column + 1}")
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_data(text: str, content_type: str | None = None) -> object:
    """YAML or JSON text to plain data; JSON if the content type says so or the text starts with '{'."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in JSON_TYPES or (kind not in YAML_TYPES and text.lstrip().startswith("{")):
        return _parse_json(text)
    return _parse_yaml(text)


# Both parsers recurse per nesting level; a policy is a few levels deep, so anything past
# Python's recursion limit is hostile or broken input, and must be a parse error, not a 500.
_TOO_DEEP = "the document is nested too deeply"


def _parse_json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyParseError(f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise PolicyParseError(f"invalid JSON: {_TOO_DEEP}") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits (Python's conversion limit)
        raise PolicyParseError(f"invalid JSON: {exc}"[:300]) from None


def _parse_yaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise PolicyParseError(f"invalid YAML: {_TOO_DEEP}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyParseError(f"invalid YAML: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise PolicyParseError(f"invalid YAML: {exc}") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits (Python's conversion limit)
        raise PolicyParseError(f"invalid YAML: {exc}"[:300]) from None


def document_from_data(data: object) -> PolicyDocument:
    """Plain data to a document; schema errors raise `PolicyInvalid` with paths."""
    if not isinstance(data, dict):
        raise PolicyParseError("a policy is a mapping with 'queues' and 'rules'")
    try:
        return PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise PolicyInvalid(schema_report(exc)) from None


def parse_policy_text(text: str, content_type: str | None = None) -> PolicyDocument:
    """Parse and schema-check policy text. Raises `PolicyParseError` or `PolicyInvalid`."""
    return document_from_data(parse_data(text, content_type))


def default_policy_text() -> str:
    return resources.files("policies").joinpath(DEFAULT_POLICY_FILE).read_text(encoding="utf-8")


def load_default_policy() -> PolicyDocument:
    return parse_policy_text(default_policy_text(), "application/yaml")

"""MCP tool input schemas: msgspec's `$defs` inlined into one self-contained object schema."""

import json
from typing import Any

import msgspec

from libs.contracts.http.chat import ChatCompletionRequest
from services.edge.mcp.schemas import inline_refs, input_schema
from services.edge.mcp.tools import TOOLS


class Leaf(msgspec.Struct):
    value: int


class Tree(msgspec.Struct):
    leaf: Leaf
    children: "list[Tree]" = []


def test_references_are_replaced_by_their_definitions() -> None:
    schema = inline_refs({"$ref": "#/$defs/A", "$defs": {
        "A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B", "description": "kept"},
                                               "bs": {"type": "array", "items": {"$ref": "#/$defs/B"}}}},
        "B": {"type": "string", "minLength": 1}}})
    assert schema == {"type": "object", "properties": {
        "b": {"type": "string", "minLength": 1, "description": "kept"},
        "bs": {"type": "array", "items": {"type": "string", "minLength": 1}}}}


def test_a_recursive_definition_keeps_its_reference_and_definition() -> None:
    schema = inline_refs(msgspec.json.schema(Tree))
    assert schema["properties"]["leaf"]["properties"]["value"]["type"] == "integer"  # inlined
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    kept = schema["$defs"]["Tree"]
    assert kept["properties"]["leaf"]["properties"]["value"]["type"] == "integer"
    assert set(schema["$defs"]) == {"Tree"}  # Leaf was inlined everywhere, so it is not kept


def test_dropped_fields_leave_properties_and_required() -> None:
    schema = input_schema(ChatCompletionRequest, drop=("stream", "stream_options", "messages"))
    assert "stream" not in schema["properties"] and "messages" not in schema["properties"]
    assert schema["required"] == [] and "title" not in schema


def test_every_tool_schema_is_a_self_contained_object() -> None:
    names = [spec.name for spec in TOOLS]
    assert len(names) == len(set(names)) == 23
    for spec in TOOLS:
        schema: dict[str, Any] = spec.tool().input_schema
        assert schema["type"] == "object", spec.name
        assert "$ref" not in json.dumps(schema) and "$defs" not in schema, spec.name

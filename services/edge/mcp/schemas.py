"""MCP tool input schemas from the msgspec Structs the HTTP API validates with.

msgspec emits `{"$ref": "#/$defs/X", "$defs": {...}}`; many MCP clients want the tool's
schema to be one self-contained object, so every local `$ref` is replaced by the
definition it names. A definition that refers to itself (none of ours does today) keeps
its `$ref` and its `$defs` entry, which is still valid JSON Schema.
"""

from typing import Any

import msgspec

_PREFIX = "#/$defs/"


def _inline(node: Any, defs: dict[str, Any], expanding: tuple[str, ...], kept: set[str]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, expanding, kept) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_PREFIX) and ref[len(_PREFIX):] in defs:
        name = ref[len(_PREFIX):]
        if name in expanding:  # recursive: leave the reference, keep its definition
            kept.add(name)
            return node
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        resolved = _inline(defs[name], defs, (*expanding, name), kept)
        return {**resolved, **_inline(siblings, defs, expanding, kept)}
    return {key: _inline(value, defs, expanding, kept) for key, value in node.items()}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` substituted in place of each `$ref` that points at them."""
    defs: dict[str, Any] = schema.get("$defs", {})
    kept: set[str] = set()
    body = _inline({k: v for k, v in schema.items() if k != "$defs"}, defs, (), kept)
    while True:  # a kept definition may itself keep others
        before = set(kept)
        pending = {name: _inline(defs[name], defs, (name,), kept) for name in sorted(before)}
        if kept == before:
            break
    if pending:
        body["$defs"] = pending
    return body


def input_schema(struct: type[msgspec.Struct], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The tool input schema of `struct`: an object schema with every reference inlined,
    without the fields in `drop` (ones a tool sets itself, such as chat's `stream`)."""
    schema = inline_refs(msgspec.json.schema(struct))
    schema.pop("title", None)
    if drop:
        schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in drop}
        if "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in drop]
    return schema

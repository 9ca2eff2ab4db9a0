"""Generate a JSON value that satisfies a JSON schema.

Used for ``response_format: json_schema`` and for tool-call arguments. It covers the subset of
JSON Schema that structured-output and tool schemas use in practice; it is deterministic so
tests can assert on exact output.
"""

from __future__ import annotations

import json
import math
from typing import Any

_MAX_DEPTH = 16
_FORMATS: dict[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "sim@example.com",
    "uri": "https://example.com/sim",
    "url": "https://example.com/sim",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
}


# The gateway's utility endpoints (services/router/utilities.py SCHEMA_MARKER) end their system
# prompt with this line and the JSON Schema of the answer; a json_object request carrying it is
# answered with JSON valid against that schema instead of the {"echo": ...} object.
UTILITY_SCHEMA_MARKER = "JSON Schema of the answer:"


def marked_schema(system_text: str) -> dict[str, Any] | None:
    """The schema after UTILITY_SCHEMA_MARKER in a system prompt, or None."""
    _, found, rest = system_text.partition(UTILITY_SCHEMA_MARKER)
    if not found:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(rest.lstrip())
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def fill_schema(schema: Any, *, name: str = "value") -> Any:
    """Return a value valid against ``schema`` (``name`` seeds generated strings)."""
    return _fill(schema, schema, name, 0)


def _resolve(root: Any, ref: str) -> Any:
    # Only local refs (#/...) are supported; remote refs would need network access.
    if not ref.startswith("#"):
        return {}
    node = root
    for raw in ref[1:].split("/"):
        if not raw:
            continue
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return {}
    return node


def _fill(schema: Any, root: Any, name: str, depth: int) -> Any:
    if schema is True or not isinstance(schema, dict):
        return name
    if depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        return _fill(_resolve(root, schema["$ref"]), root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            return _fill(branches[0], root, name, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        return _fill_all_of(schema, all_of, root, name, depth)

    kind = schema.get("type")
    if isinstance(kind, list):
        # Prefer a non-null type so the value carries information.
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        if "properties" in schema or "required" in schema:
            kind = "object"
        elif "items" in schema or "prefixItems" in schema:
            kind = "array"
        else:
            return {}
    if kind == "object":
        return _fill_object(schema, root, depth)
    if kind == "array":
        return _fill_array(schema, root, name, depth)
    if kind == "string":
        return _fill_string(schema, name)
    if kind == "integer":
        return int(_fill_number(schema, integer=True))
    if kind == "number":
        return _fill_number(schema, integer=False)
    if kind == "boolean":
        return True
    return None


def _fill_all_of(schema: dict[str, Any], parts: list[Any], root: Any, name: str, depth: int) -> Any:
    rest = {k: v for k, v in schema.items() if k != "allOf"}
    values = [_fill(p, root, name, depth + 1) for p in [*parts, rest] if p]
    objects = [v for v in values if isinstance(v, dict)]
    if objects and len(objects) == len(values):
        merged: dict[str, Any] = {}
        for obj in objects:
            merged.update(obj)
        return merged
    return values[0] if values else {}


def _fill_object(schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = schema.get("required")
    required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
    out: dict[str, Any] = {}
    # Fill every declared property: strict structured outputs require all of them anyway.
    for key, sub in props.items():
        out[key] = _fill(sub, root, key, depth + 1)
    for key in required:
        if key not in out:
            extra = schema.get("additionalProperties")
            out[key] = _fill(extra if isinstance(extra, dict) else {"type": "string"}, root, key, depth + 1)
    return out


def _fill_array(schema: dict[str, Any], root: Any, name: str, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    out: list[Any] = []
    if isinstance(prefix, list):
        out = [_fill(p, root, name, depth + 1) for p in prefix]
    items = schema.get("items")
    min_items = schema.get("minItems")
    want = max(1, min_items if isinstance(min_items, int) else 0)
    max_items = schema.get("maxItems")
    if isinstance(max_items, int):
        want = min(want, max_items)
    if items is False:
        return out
    while len(out) < want:
        out.append(_fill(items if items is not None else {"type": "string"}, root, name, depth + 1))
    return out


def _fill_string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    value = _FORMATS.get(fmt, name) if isinstance(fmt, str) else name
    min_len = schema.get("minLength")
    if isinstance(min_len, int) and len(value) < min_len:
        value = value + "x" * (min_len - len(value))
    max_len = schema.get("maxLength")
    if isinstance(max_len, int) and len(value) > max_len:
        value = value[:max_len]
    return value


def _fill_number(schema: dict[str, Any], *, integer: bool) -> float:
    value: float = 1 if integer else 1.5
    lo = schema.get("minimum")
    ex_lo = schema.get("exclusiveMinimum")
    hi = schema.get("maximum")
    ex_hi = schema.get("exclusiveMaximum")
    step = 1 if integer else 0.5
    if isinstance(lo, int | float) and value < lo:
        value = lo
    if isinstance(ex_lo, int | float) and value <= ex_lo:
        value = ex_lo + step
    if isinstance(hi, int | float) and value > hi:
        value = hi
    if isinstance(ex_hi, int | float) and value >= ex_hi:
        value = ex_hi - step
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0:
        value = multiple * max(1, round(value / multiple))
    if integer and value != int(value):
        value = math.ceil(value)
    return value

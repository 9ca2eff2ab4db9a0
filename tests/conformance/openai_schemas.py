"""Validate JSON bodies against the component schemas of OpenAI's own OpenAPI document.

The document (`openai-openapi.json.gz` here; README.md says where it came from) is OpenAPI 3.1,
whose schemas are JSON Schema 2020-12, except that it still carries OpenAPI 3.0's
`nullable: true` in about a hundred places, and OpenAI's API sends `null` for optional fields
marked so. That one keyword is read as "or null" (the schema is wrapped in
`anyOf: [schema, {"type": "null"}]`); everything else is validated as written, formats included,
so any other deviation is a failure. OpenAPI-only keywords (`discriminator`, `example`,
`x-*`) are annotations to a JSON Schema validator and change nothing.

    schemas = OpenAISchemas.load()
    schemas.check("CreateChatCompletionResponse", body)        # AssertionError listing every mismatch
    schemas.check_stream_event("ResponseStreamEvent", event)   # the variant named by event["type"]
"""

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT: Final = Path(__file__).with_name("openai-openapi.json.gz")
# Where our contract deliberately differs from the document (docs/conformance.md): the error
# envelope's `code` is the HTTP status as an integer; OpenAI's is a string or null. A test that
# names this path as a deviation must check the field itself.
ERROR_CODE: Final = "$.error.code"
_URI: Final = "https://raw.githubusercontent.com/openai/openai-openapi/openapi.json"
_SCHEMAS: Final = "#/components/schemas/"


def read_nullable(node: Any) -> Any:
    """A copy of a schema tree with OpenAPI 3.0's `nullable: true` made a JSON Schema "or null".

    Descriptive keywords stay on the outer schema; `nullable: false` (the 3.0 default) is dropped.
    """
    if isinstance(node, list):
        return [read_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    # A property may be *named* `nullable` (its value a schema): only a boolean is the keyword.
    out = {key: read_nullable(value) for key, value in node.items()
           if not (key == "nullable" and isinstance(value, bool))}
    if node.get("nullable") is not True:
        return out
    outer = {key: out.pop(key) for key in ("title", "description", "default", "example", "deprecated")
             if key in out}
    return {**outer, "anyOf": [out, {"type": "null"}]}


def _closest_branch(error: ValidationError) -> list[ValidationError]:
    """The errors of the anyOf/oneOf branch `error`'s instance came closest to: not one whose
    `type` property (the discriminator) already differs, then the one with the fewest errors."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def distance(errors: list[ValidationError]) -> tuple[bool, int]:
        return any(list(sub.relative_path) == ["type"] for sub in errors), len(errors)

    return min(branches.values(), key=distance) if branches else []


def _describe(error: ValidationError, depth: int = 0) -> str:
    """One line per mismatch: where, what; for a failed anyOf/oneOf, why the closest branch failed."""
    line = f"{error.json_path}: {error.message[:300]}"
    closest = _closest_branch(error) if depth < 4 else []
    if not closest and error.context:
        closest = [best_match(error.context)]
    for sub in closest[:5]:
        line += "\n" + "    " * (depth + 1) + "closest: " + _describe(sub, depth + 1)
    return line


class OpenAISchemas:
    """The document's component schemas as Draft 2020-12 validators, `$ref`s resolved in a Registry
    that holds the whole (nullable-read) document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = read_nullable(document)
        resource = Resource(contents=self._document, specification=DRAFT202012)
        self._registry: Registry = Registry().with_resource(_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}

    @classmethod
    def load(cls, path: Path = DOCUMENT) -> "OpenAISchemas":
        with gzip.open(path, "rb") as raw:
            return cls(json.load(raw))

    @property
    def info(self) -> dict[str, Any]:
        return self._document["info"]

    def names(self) -> set[str]:
        return set(self._document["components"]["schemas"])

    def schema(self, name: str) -> dict[str, Any]:
        return self._document["components"]["schemas"][name]

    def _validator(self, name: str) -> Draft202012Validator:
        if name not in self._validators:
            if name not in self.names():
                raise KeyError(f"no component schema {name!r} in the OpenAI document")
            self._validators[name] = Draft202012Validator(
                {"$ref": f"{_URI}{_SCHEMAS}{name}"}, registry=self._registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER)
        return self._validators[name]

    def errors(self, name: str, body: Any, deviations: Iterable[str] = ()) -> list[str]:
        """Every way `body` fails the component schema `name` (empty when it conforms), but for
        mismatches at exactly the JSON paths in `deviations` (documented differences, e.g. ERROR_CODE)."""
        skip = set(deviations)
        found = sorted((error for error in self._validator(name).iter_errors(body) if error.json_path not in skip),
                       key=lambda e: [str(part) for part in e.absolute_path])
        return [_describe(error) for error in found]

    def check(self, name: str, body: Any, deviations: Iterable[str] = ()) -> None:
        """Raise AssertionError naming the schema, each mismatch and the body when `body` fails."""
        problems = self.errors(name, body, deviations)
        if problems:
            shown = json.dumps(body)[:1500]
            raise AssertionError(f"does not conform to {name}:\n  " + "\n  ".join(problems) + f"\nbody: {shown}")

    def variant(self, union: str, event_type: str) -> str:
        """The member of a union of stream events (`ResponseStreamEvent`, ...) whose `type` is
        `event_type`; KeyError when the document defines no such event."""
        for member in self.schema(union).get("anyOf") or self.schema(union).get("oneOf") or []:
            ref = member.get("$ref", "")
            name = ref.removeprefix(_SCHEMAS)
            kind = self.schema(name).get("properties", {}).get("type", {})
            if event_type in kind.get("enum", ()) or kind.get("const") == event_type:
                return name
        raise KeyError(f"{union} has no event of type {event_type!r}")

    def check_stream_event(self, union: str, event: dict[str, Any]) -> str:
        """Check one stream event against its variant and against the union; returns the variant."""
        name = self.variant(union, str(event.get("type")))
        self.check(name, event)
        self.check(union, event)
        return name

"""multipart/form-data bodies (audio transcriptions, image edits), handled as bytes.

The edge checks which fields a form has and reads its `model` without decoding
any file; the router swaps `model` for the provider's model name the same way.
Only the model part's value changes: every other byte, files included, is
forwarded as received, so the client's Content-Type and boundary stay valid.
"""

import re
from typing import NamedTuple

MAX_PARTS = 256
_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
# `name=` as a parameter of its own, not the tail of `filename=`.
_NAME = re.compile(rb'(?:^|;)\s*name\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)
_FILENAME = re.compile(rb'(?:^|;)\s*filename\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)


class FormError(ValueError):
    """The body is not a well-formed multipart/form-data body for its Content-Type."""


class FormPart(NamedTuple):
    name: str
    filename: str | None  # set for file parts
    start: int  # offsets of the part's data in the body
    end: int


def is_form(content_type: str | None) -> bool:
    return content_type is not None and content_type.lower().startswith("multipart/form-data")


def boundary_of(content_type: str | None) -> bytes:
    if not is_form(content_type):
        raise FormError("Content-Type must be multipart/form-data.")
    assert content_type is not None
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise FormError("The multipart/form-data Content-Type has no boundary.")
    boundary = (match.group(1) or match.group(2)).encode("latin-1", errors="replace")
    if len(boundary) > 200:  # RFC 2046: at most 70 characters; be lenient, not unbounded
        raise FormError("The multipart boundary is too long.")
    return boundary


def _param(pattern: re.Pattern[bytes], value: bytes) -> str | None:
    match = pattern.search(value)
    if match is None:
        return None
    raw = match.group(1) if match.group(1) is not None else match.group(2)
    return raw.decode("utf-8", errors="replace")


def _disposition(headers: bytes) -> tuple[str, str | None]:
    for line in headers.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-disposition":
            params = value.partition(b";")[2]  # after the disposition type (form-data)
            name = _param(_NAME, params)
            if name is None:
                raise FormError("A form part's Content-Disposition has no name.")
            return name, _param(_FILENAME, params)
    raise FormError("A form part has no Content-Disposition header.")


def form_parts(body: bytes, content_type: str | None) -> list[FormPart]:
    """The parts of a form, in order: names, file names and where each one's data lies."""
    delimiter = b"--" + boundary_of(content_type)
    if body.startswith(delimiter):
        pos = 0
    else:  # a preamble before the first delimiter
        pos = body.find(b"\r\n" + delimiter)
        if pos < 0:
            raise FormError("The body holds no part of the multipart form its Content-Type announces.")
        pos += 2
    parts: list[FormPart] = []
    while True:
        pos += len(delimiter)
        if body.startswith(b"--", pos):
            return parts  # the close delimiter
        line_end = body.find(b"\r\n", pos)  # after optional transport padding
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise FormError("The multipart form is truncated or malformed.")
        head_end = body.find(b"\r\n\r\n", line_end)
        if head_end < 0:
            raise FormError("A form part's headers are not terminated.")
        name, filename = _disposition(body[line_end + 2 : head_end])
        data_start = head_end + 4
        data_end = body.find(b"\r\n" + delimiter, data_start)
        if data_end < 0:
            raise FormError("The multipart form is not terminated (no closing boundary).")
        parts.append(FormPart(name, filename, data_start, data_end))
        if len(parts) > MAX_PARTS:
            raise FormError(f"The form has more than {MAX_PARTS} parts.")
        pos = data_end + 2


def field(body: bytes, parts: list[FormPart], name: str) -> str | None:
    """The value of the first non-file field `name`, or None."""
    for part in parts:
        if part.name == name and part.filename is None:
            return body[part.start : part.end].decode("utf-8", errors="replace")
    return None


def replace_field(body: bytes, content_type: str | None, name: str, value: str) -> bytes:
    """`body` with the value of every non-file field `name` replaced; nothing else changes."""
    found = [p for p in form_parts(body, content_type) if p.name == name and p.filename is None]
    if not found:
        raise FormError(f"The form has no '{name}' field.")
    pieces: list[bytes] = []
    last = 0
    for part in found:
        pieces += [body[last : part.start], value.encode()]
        last = part.end
    pieces.append(body[last:])
    return b"".join(pieces)

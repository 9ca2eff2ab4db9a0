"""What a client-supplied id may look like before it becomes part of a NATS subject, a KV
key or an object name: ASCII letters, digits, `_` and `-`, at most 64. Anything else
(`.`, `*`, `>`, spaces, non-ASCII, which NATS refuses or reads as wildcards) could widen
a lookup into other keys, so it is treated as an unknown id (a 404), never sent on."""

import re

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None

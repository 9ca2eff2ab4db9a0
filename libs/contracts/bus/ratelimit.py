"""Rate-limit counter reports gossiped between edge replicas (services/edge/ratelimit.py)."""

import msgspec


class RateSync(msgspec.Struct, frozen=True, array_like=True):
    """One replica's counter deltas for one window since its previous report."""

    replica: str
    window: int
    deltas: dict[str, tuple[int, int]]  # key id -> (requests admitted, tokens used)

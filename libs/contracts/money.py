"""Money on the wire: integer micro-dollars inside, fractional cents in headers."""

MICROS_PER_CENT = 10_000


def cents_header(micros: int) -> str:
    """X-Cost-Cents: exact, because 1 cent is 10,000 micro-dollars (four decimals)."""
    return f"{micros / MICROS_PER_CENT:.4f}"


def cents(micros: int) -> float:
    return micros / MICROS_PER_CENT

"""How results look: rich tables on a terminal, the gateway's JSON as is for scripts.

Every value that came from the gateway or the user is shown as rich Text, never as markup,
so a tag like `[bold]` prints as itself.
"""

import os
import sys
import time
from collections.abc import Iterable, Sequence

import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

from libs.contracts.money import MICROS_PER_CENT

MICROS_PER_USD = 100 * MICROS_PER_CENT


_PIPED_WIDTH = 160  # tables written to a file or a pipe: wide enough not to fold ids


def consoles() -> tuple[Console, Console]:
    """stdout for results, stderr for progress, notes and errors. `highlight=False`: numbers and
    ids are not recoloured by guesswork. Off a terminal rich would assume 80 columns; COLUMNS
    still wins when set."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return (Console(highlight=False, width=_PIPED_WIDTH if piped else None),
            Console(stderr=True, highlight=False))


def usd(micros: int) -> str:
    """Micro-dollars as dollars: exact to the micro-dollar, at least cents (`$0.000012`, `$1.50`)."""
    whole, rest = divmod(abs(micros), MICROS_PER_USD)
    digits = f"{rest:06d}".rstrip("0").ljust(2, "0")
    return ("-" if micros < 0 else "") + f"${whole:,}.{digits}"


def when(unix_s: float | None) -> str:
    if unix_s is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix_s))


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def cell(value: object) -> Text:
    return Text("-" if value is None or value == "" else str(value))


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None,
          numeric: Iterable[str] = ()) -> Table:
    right = set(numeric)
    shown = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        shown.add_column(name, justify="right" if name in right else "left", overflow="fold")
    for row in rows:
        shown.add_row(*(value if isinstance(value, Text) else cell(value) for value in row))
    return shown


def print_raw_json(raw: bytes) -> None:
    """The gateway's JSON, indented, exactly the members it sent."""
    sys.stdout.write(msgspec.json.format(raw, indent=2).decode("utf-8", "replace") + "\n")
    sys.stdout.flush()


def print_json(value: msgspec.Struct | list[msgspec.Struct] | dict[str, object]) -> None:
    print_raw_json(msgspec.json.encode(value))


def status_text(status: str) -> Text:
    style = {"completed": "green", "failed": "red", "cancelled": "yellow", "expired": "yellow",
             "cancelling": "yellow"}.get(status, "cyan")
    return Text(status, style=style)

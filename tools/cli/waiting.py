"""Polling a job, batch or eval until it finishes, with a progress bar on stderr."""

import time
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from tools.cli.exit_codes import TIMED_OUT, CliError

T = TypeVar("T")


class Progressed:
    """Where a thing is: `done` of `total` (None while unknown), and a word for its state."""

    def __init__(self, state: str, done: float, total: float | None) -> None:
        self.state = state
        self.done = done
        self.total = total


def wait_until(fetch: Callable[[], T], finished: Callable[[T], bool], progress_of: Callable[[T], Progressed],
               what: str, err: Console, timeout_s: float, interval_s: float) -> T:
    """`fetch()` until `finished`; a CliError(TIMED_OUT) after `timeout_s` (0: no limit)."""
    deadline = None if timeout_s <= 0 else time.monotonic() + timeout_s
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    # transient: the bar is for watching, the final answer is printed after it.
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(what, total=None)
        while True:
            current = fetch()
            where = progress_of(current)
            bar.update(task, description=f"{what}: {where.state}", completed=where.done, total=where.total)
            if finished(current):
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise CliError(TIMED_OUT, f"{what} had not finished after {timeout_s:g}s (it is {where.state}); "
                                          "it goes on on the gateway")
            time.sleep(interval_s)

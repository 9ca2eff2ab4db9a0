"""The long-running task a service part starts with itself: a loop that refreshes, publishes,
sweeps or consumes until the part stops.

Stopping cancels the task and waits for it, so the loop's `finally` blocks have run (a lock let
go, a subscription closed) before the part's own shutdown goes on; waiting also keeps asyncio
from reporting a task destroyed while pending when the loop closes.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger()


class BackgroundTask:
    __slots__ = ("_name", "_task")

    def __init__(self, name: str) -> None:
        self._name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, loop: Coroutine[Any, Any, None]) -> None:
        """Run `loop`, replacing (cancelling) the one started before, if any."""
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.get_running_loop().create_task(loop, name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # the stop itself was cancelled
                raise
        except Exception as exc:  # it had already died: said here, as nothing awaited it before
            log.warning("background_task_failed", task=self._name, error=repr(exc))

"""libs/runtime/background.py: a part's loop, stopped by cancelling and awaiting it."""

import asyncio

from libs.runtime.background import BackgroundTask


async def test_stop_cancels_the_loop_and_waits_for_its_cleanup() -> None:
    cleaned: list[str] = []

    async def loop() -> None:
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits still runs before stop returns
            cleaned.append("done")

    task = BackgroundTask("t")
    task.start(loop())
    await asyncio.sleep(0)
    assert task.running
    await task.stop()
    assert cleaned == ["done"] and not task.running
    await task.stop()  # twice is harmless


async def test_start_again_replaces_the_running_loop() -> None:
    ran: list[int] = []

    async def loop(n: int) -> None:
        ran.append(n)
        await asyncio.sleep(3600)

    task = BackgroundTask("t")
    task.start(loop(1))
    await asyncio.sleep(0)
    [first] = [t for t in asyncio.all_tasks() if t.get_name() == "t"]
    task.start(loop(2))
    await asyncio.sleep(0)
    assert ran == [1, 2]
    assert first.cancelled()  # not left running beside the second
    assert [t for t in asyncio.all_tasks() if t.get_name() == "t" and not t.done()] != [first]
    await task.stop()


async def test_a_loop_that_already_died_does_not_break_the_stop() -> None:
    async def loop() -> None:
        raise RuntimeError("boom")

    task = BackgroundTask("t")
    task.start(loop())
    await asyncio.sleep(0)
    assert not task.running
    await task.stop()  # logged, not raised: the part's shutdown goes on


async def test_a_cancelled_stop_is_still_cancelled() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await release.wait()  # a slow cleanup

    task = BackgroundTask("t")
    task.start(stubborn())
    await asyncio.sleep(0)
    stopping = asyncio.get_running_loop().create_task(task.stop())
    await asyncio.sleep(0)
    stopping.cancel()
    release.set()
    try:
        await stopping
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the stop swallowed its own cancellation")

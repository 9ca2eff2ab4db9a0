"""Per-receiver slots: the bound, waiting for a slot when the receiver keeps pace, and
refusing (the message goes back to the queue) when it does not."""

import asyncio

import pytest

from services.webhooks.slots import TargetSlots, target_of

A = target_of("https://a.example/x")


def test_targets_and_the_bound() -> None:
    slots = TargetSlots(2)
    assert A == target_of("https://a.example/y?z") != target_of("https://a.example:8443/x")
    assert slots.enter(A) and slots.enter(A) and not slots.enter(A)
    assert slots.enter(target_of("https://b.example/"))
    slots.leave(A)
    assert slots.enter(A)
    slots.leave("https://never.example:")  # unknown: ignored


async def test_waiters_get_freed_slots_in_order() -> None:
    slots = TargetSlots(1, max_wait_s=5.0)
    assert slots.enter(A)
    order: list[int] = []

    async def waiter(n: int) -> None:
        assert await slots.wait(A)
        order.append(n)

    waiting = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert order == []
    for _ in range(3):
        slots.leave(A)  # each release hands the slot straight to the next in line
        await asyncio.sleep(0)
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2]
    assert not slots.enter(A)  # the last waiter holds the one slot
    slots.leave(A)
    assert slots.enter(A)


async def test_a_receiver_that_does_not_release_is_not_waited_for() -> None:
    slots = TargetSlots(1, max_wait_s=0.05)
    assert slots.enter(A)
    assert not await slots.wait(A)  # no slot within max_wait_s: given back
    await asyncio.sleep(0.06)
    # No release for longer than max_wait_s: the receiver's pace rules out waiting at all.
    assert not await asyncio.wait_for(slots.wait(A), 0.01)


async def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    slots = TargetSlots(1, max_wait_s=5.0)
    assert slots.enter(A)
    first = asyncio.create_task(slots.wait(A))
    second = asyncio.create_task(slots.wait(A))
    await asyncio.sleep(0)
    slots.leave(A)  # handed to `first`...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1)
    slots.leave(A)
    assert slots.enter(A)

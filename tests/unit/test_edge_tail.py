"""services/edge/tail.py below its HTTP handler: which usage events a tail client gets, and what
a slow one is told."""

import msgspec
from nats.aio.msg import Msg

from libs.contracts.bus.usage import UsageBatch, UsageEvent, encode
from libs.contracts.http.usage import Generation
from services.edge import tail as edge_tail


def _event(request_id: str, account: str = "root", sub: str | None = None) -> UsageEvent:
    return UsageEvent(request_id=request_id, ts_ms=1_700_000_000_000, account_id=account, key_id="k",
                      subaccount_id=sub, operation="chat", requested_model="m", model="m", provider="p", status=200,
                      input_units=3, output_units=5, cost_micros=42, total_latency_ms=12.5, tag="t")


def _msg(*events: UsageEvent) -> Msg:
    return Msg(None, subject="sb.usage.events", data=encode(UsageBatch(list(events))))  # type: ignore[arg-type]


def _sse(chunk: bytes) -> list[tuple[str, bytes]]:
    events = []
    for block in chunk.strip().split(b"\n\n"):
        name, data = block.split(b"\n")
        events.append((name.removeprefix(b"event: ").decode(), data.removeprefix(b"data: ")))
    return events


async def test_only_the_account_and_the_chosen_sub_account_are_queued() -> None:
    whole = edge_tail._Tail("root", None)
    one = edge_tail._Tail("root", "sa_1")
    batch = _msg(_event("a"), _event("b", sub="sa_1"), _event("c", account="other"), _event("d", sub="sa_2"))
    await whole.on_message(batch)
    await one.on_message(batch)
    assert [whole.queue.get_nowait().request_id for _ in range(whole.queue.qsize())] == ["a", "b", "d"]
    assert [one.queue.get_nowait().request_id for _ in range(one.queue.qsize())] == ["b"]


async def test_a_single_event_message_and_garbage_are_handled() -> None:
    tail = edge_tail._Tail("root", None)
    await tail.on_message(Msg(None, data=encode(_event("solo"))))  # type: ignore[arg-type]
    await tail.on_message(Msg(None, data=b"\xc1 not msgpack"))  # type: ignore[arg-type]
    await tail.on_message(Msg(None, data=msgspec.msgpack.encode({"events": "nope"})))  # type: ignore[arg-type]
    assert tail.queue.qsize() == 1 and tail.dropped == 0


async def test_a_slow_client_gets_what_fits_then_the_count_of_what_did_not() -> None:
    tail = edge_tail._Tail("root", None)
    await tail.on_message(_msg(*[_event(f"r{i}") for i in range(edge_tail._MAX_QUEUED + 7)]))
    assert tail.dropped == 7
    events = _sse(tail.drain(tail.queue.get_nowait()))
    assert [name for name, _ in events] == ["generation"] * edge_tail._MAX_QUEUED + ["dropped"]
    first = msgspec.json.decode(events[0][1], type=Generation)
    assert (first.id, first.usage.input_units, first.cost.total_micros, first.timing.total_latency_ms,
            first.tag, first.created) == ("r0", 3, 42, 12.5, "t", 1_700_000_000.0)
    assert msgspec.json.decode(events[-1][1]) == {"count": 7, "object": "tail.dropped"}
    assert tail.dropped == 0 and tail.queue.empty()

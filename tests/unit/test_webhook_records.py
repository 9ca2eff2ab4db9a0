"""Webhook KV records over a real nats-server: creates and updates by revision through
AckedPublisher (the delivery hot path), including a deleted key's tombstone, a wrong
revision, a subject no stream stores and an ack that never comes."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.errors import KeyWrongLastSequenceError, NoStreamResponseError

from libs.runtime.kv_mirror import open_bucket
from services.webhooks.acked_publish import AckedPublisher
from services.webhooks.records import Records
from tools.cli.processes import free_port, start_nats

BUCKET = "test_webhook_records"


class Note(msgspec.Struct):
    text: str


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = start_nats(Path(tmp_path_factory.mktemp("webhook_records")), port, None)
    yield f"nats://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    conn = await nats.connect(nats_url)
    yield conn
    await conn.close()


@pytest.fixture
async def records(nc: Client) -> AsyncIterator[Records[Note]]:
    writes = AckedPublisher(nc)
    await writes.start()
    yield Records(BUCKET, await open_bucket(nc.jetstream(), BUCKET), msgspec.json.Decoder(Note).decode, writes)
    await writes.stop()


async def test_create_change_and_recreate(records: Records[Note]) -> None:
    first = await records.create("acct", "n1", Note("a"))
    assert first is not None and await records.read("acct", "n1") == (Note("a"), first)
    assert await records.create("acct", "n1", Note("b")) is None  # kept: it exists
    changed = await records.change_at("acct", "n1", lambda n: Note(n.text + "!"))
    assert changed is not None and changed[0] == Note("a!") and changed[1] > first
    # A stale known record (its revision has moved on) is read again, not written over.
    again = await records.change_at("acct", "n1", lambda n: Note(n.text + "?"), known=(Note("a"), first))
    assert again is not None and again[0] == Note("a!?")
    with pytest.raises(KeyWrongLastSequenceError):
        await records._write(Records.key("acct", "n1"), b'{"text":"x"}', first)
    await records.delete("acct", "n1")
    assert await records.read("acct", "n1") is None
    recreated = await records.create("acct", "n1", Note("c"))  # over the delete's tombstone
    assert recreated is not None and await records.get("acct", "n1") == Note("c")


async def test_no_stream_and_no_ack(nc: Client) -> None:
    writes = AckedPublisher(nc, timeout_s=0.2)
    await writes.start()
    try:
        with pytest.raises(NoStreamResponseError):
            await writes.publish("sb.test.nowhere", b"x")
        # Something answers nothing at all: the sweeper times the publish out.
        silent = await nc.subscribe("sb.test.silent")
        with pytest.raises(nats.errors.TimeoutError):
            await writes.publish("sb.test.silent", b"x")
        await silent.unsubscribe()
    finally:
        await writes.stop()

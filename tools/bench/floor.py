"""The architecture's floor: the bare edge -> NATS -> router -> upstream path
with no auth, no validation, no parsing and no headers.

`make bench` runs it beside the gateway so the report separates what the
architecture costs on this machine (floor - direct) from what our code adds on
top (gateway - floor). Usage: python -m tools.bench.floor edge|router PORT NATS_URL UPSTREAM_URL [SUBJECT]
(two floors, one per upstream, use two subjects).
"""

import asyncio
import sys

import aiohttp
import nats
import uvloop
from aiohttp import web

SUBJECT = "bench.floor"


async def edge(port: int, nats_url: str, subject: str) -> None:
    nc = await nats.connect(nats_url)

    async def handle(request: web.Request) -> web.Response:
        reply = await nc.request(subject, await request.read(), timeout=30)
        return web.Response(body=reply.data, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    app.router.add_get("/healthz", lambda _: web.Response(text="ok"))  # type: ignore[arg-type,return-value]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def router(nats_url: str, upstream: str, subject: str) -> None:
    nc = await nats.connect(nats_url)
    session = aiohttp.ClientSession()
    tasks: set[asyncio.Task[None]] = set()
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}

    async def work(msg: nats.aio.msg.Msg) -> None:
        async with session.post(f"{upstream}/chat/completions", data=msg.data, headers=headers) as response:
            body = await response.read()
        await nc.publish(msg.reply, body)

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        task = asyncio.get_running_loop().create_task(work(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await nc.subscribe(subject, queue="floor", cb=on_msg)
    await asyncio.Event().wait()


if __name__ == "__main__":
    role, port, nats_url, upstream = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    subject = sys.argv[5] if len(sys.argv) > 5 else SUBJECT
    uvloop.run(edge(port, nats_url, subject) if role == "edge" else router(nats_url, upstream, subject))

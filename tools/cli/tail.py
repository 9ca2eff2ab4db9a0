"""`switchboard tail`: requests as they complete, from the edge's live stream (admin keys)."""

import argparse
import sys
import time

import msgspec
from rich.text import Text

from libs.contracts.http import tail as contract
from libs.contracts.http.usage import Generation
from tools.cli.context import Context
from tools.cli.exit_codes import OK, UNREACHABLE, CliError
from tools.cli.gateway import sse_events
from tools.cli.output import usd

_decode_generation = msgspec.json.Decoder(Generation).decode
_decode_ready = msgspec.json.Decoder(contract.TailReady).decode
_decode_dropped = msgspec.json.Decoder(contract.TailDropped).decode
_COLUMNS = (("time", 8), ("request", 32), ("model", 28), ("status", 6), ("in", 7), ("out", 7), ("cost", 11),
            ("latency", 9), ("tag", 14), ("sub-account", 20))
# The edge writes at least a keep-alive every KEEPALIVE_S: silence for much longer is a dead connection.
_READ_TIMEOUT_S = 4 * contract.KEEPALIVE_S


def _cells(g: Generation) -> list[str]:
    return [time.strftime("%H:%M:%S", time.localtime(g.created)), g.id, g.model, str(g.status),
            f"{g.usage.input_units:,}", f"{g.usage.output_units:,}", usd(g.cost.total_micros),
            f"{g.timing.total_latency_ms:,.0f} ms", g.tag or "-", g.sub_account_id or "-"]


def _line(values: list[str], status: int | None = None) -> Text:
    line = Text()
    for (name, width), value in zip(_COLUMNS, values, strict=True):
        right = name in ("status", "in", "out", "cost", "latency")
        padded = value.rjust(width) if right else value.ljust(width)
        style = None if status is None else ("green" if status < 400 else "red") if name == "status" else None
        line.append(padded + " ", style=style)
    return line


def run_tail(ctx: Context) -> int:
    try:
        return _tail(ctx)
    except KeyboardInterrupt:  # how a tail is meant to end
        return OK


def _tail(ctx: Context) -> int:
    args = ctx.args
    params = {"sub_account": args.sub_account} if args.sub_account else None
    shown = 0
    with ctx.gateway().stream("GET", contract.PATH.removeprefix("/v1"), params=params,
                              timeout_s=_READ_TIMEOUT_S) as response:
        for event in sse_events(response):
            if event.event == contract.EVENT_READY:
                ready = _decode_ready(event.data)
                scope = f"sub-account {ready.sub_account_id}" if ready.sub_account_id else "the whole account"
                ctx.note(f"tailing requests of {scope} as they complete (Ctrl-C to stop)")
                if not ctx.json:
                    ctx.out.print(_line([name for name, _ in _COLUMNS]), style="bold", soft_wrap=True)
            elif event.event == contract.EVENT_DROPPED:
                ctx.note(f"{_decode_dropped(event.data).count} requests were not shown (reading too slowly)",
                         style="yellow")
            elif event.event == contract.EVENT_GENERATION:
                if ctx.json:
                    sys.stdout.write(event.data + "\n")
                    sys.stdout.flush()
                else:
                    generation = _decode_generation(event.data)
                    ctx.out.print(_line(_cells(generation), generation.status), soft_wrap=True)
                shown += 1
                if args.count and shown >= args.count:
                    return OK
    raise CliError(UNREACHABLE, "the gateway ended the stream (it may be restarting); run `switchboard tail` again")


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
             common: argparse.ArgumentParser) -> None:
    tail = commands.add_parser("tail", parents=[common], help="watch requests complete, live (admin key)",
                               description="One line per request as it completes: time, request id, model, "
                                           "status, tokens in/out, cost, latency, tag, sub-account. --json "
                                           "prints one generation object per line.")
    tail.add_argument("--sub-account", metavar="ID", help="only this sub-account's requests")
    tail.add_argument("--count", type=int, metavar="N", help="stop after N requests")
    tail.set_defaults(run=run_tail)

"""`switchboard usage by-tag|by-sub-account`: the ledger's cost attribution reports as tables."""

import argparse

from libs.contracts.http.usage import UsageReport
from tools.cli.context import Context
from tools.cli.exit_codes import OK, USAGE, CliError
from tools.cli.gateway import parse
from tools.cli.output import ms, print_raw_json, table, usd

_PATHS = {"by-tag": "/usage/by-tag", "by-sub-account": "/usage/by-sub-account"}
_NONE = {"by-tag": "(untagged)", "by-sub-account": "(account itself)"}


def run_usage(ctx: Context) -> int:
    args = ctx.args
    if args.month and args.to:
        raise CliError(USAGE, "--month and --to do not go together: give a month, or --from/--to")
    params = {name: value for name, value in (("month", args.month), ("from", args.from_), ("to", args.to),
                                              ("bucket", args.bucket)) if value}
    raw = ctx.gateway().request("GET", _PATHS[args.report], params=params)
    if ctx.json:
        print_raw_json(raw)
        return OK
    report = parse(raw, UsageReport)
    group = "tag" if args.report == "by-tag" else "sub-account"
    columns = [group, *(["from"] if report.bucket else []), "requests", "errors", "input", "output", "cost",
               "p50", "p95"]
    rows = [[row.group or _NONE[args.report], *([row.bucket_start] if report.bucket else []),
             f"{row.requests:,}", f"{row.errors:,}", f"{row.input_units:,}", f"{row.output_units:,}",
             usd(row.cost_micros), ms(row.p50_latency_ms), ms(row.p95_latency_ms)] for row in report.data]
    shown = table(columns, rows, title=f"usage {args.report}, {report.start} to {report.end}",
                  numeric=("requests", "errors", "input", "output", "cost", "p50", "p95"))
    total = report.total
    shown.add_section()
    shown.add_row("total", *([""] if report.bucket else []), f"{total.requests:,}", f"{total.errors:,}",
                  f"{total.input_units:,}", f"{total.output_units:,}", usd(total.cost_micros), "", "",
                  style="bold")
    ctx.out.print(shown)
    return OK


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
             common: argparse.ArgumentParser) -> None:
    usage = commands.add_parser("usage", help="cost attribution reports (by tag, by sub-account)",
                                description="Requests, tokens, cost and latency, grouped by tag or by sub-account. "
                                            "The current month unless --month or --from/--to says otherwise.")
    usage.set_defaults(run=run_usage)
    reports = usage.add_subparsers(dest="report", required=True, metavar="REPORT")
    for name, text in (("by-tag", "grouped by the x-aig-tag of each request"),
                       ("by-sub-account", "grouped by sub-account")):
        report = reports.add_parser(name, parents=[common], help=text)
        span = report.add_mutually_exclusive_group()
        span.add_argument("--month", metavar="YYYY-MM", help="a calendar month (UTC)")
        span.add_argument("--from", dest="from_", metavar="WHEN", help="start: ISO 8601 or unix seconds")
        report.add_argument("--to", metavar="WHEN", help="end (exclusive): ISO 8601 or unix seconds")
        report.add_argument("--bucket", choices=("hour", "day", "month"), help="also split by time")

"""`switchboard <command>`: `up` runs a gateway here; the rest talk to one by URL and key."""

import argparse
import sys

from tools.cli import accounts, batches, calls, evals, jobs, login, tail, usage_reports, webhook_check
from tools.cli.context import Context
from tools.cli.exit_codes import INTERRUPTED, CliError
from tools.cli.output import print_raw_json

_EPILOG = ("The gateway and key come from --url/--key, else SWITCHBOARD_URL / SWITCHBOARD_API_KEY, else "
           "`switchboard login`. Exit codes: 0 ok, 1 the gateway refused (its message is printed) or the job, "
           "batch or check failed, 2 usage error, 3 gateway unreachable or no key, 4 --wait timed out.")


def _common() -> argparse.ArgumentParser:
    """The options every gateway command takes, after the command's name or before it. SUPPRESS:
    a value given before the command is not reset by the command's own default."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="the gateway, e.g. http://127.0.0.1:8080/v1")
    common.add_argument("--key", default=argparse.SUPPRESS, help="an API key (sk-aig-...)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the gateway's JSON instead of tables (for scripts)")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__, epilog=_EPILOG, parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="start NATS and every service on this machine")
    up.add_argument("--nats-cluster", type=int, default=1, metavar="N", choices=range(1, 6),
                    help="run NATS as N clustered servers (data under .data/nats-1..N), "
                         "streams and buckets replicated, to try failover locally (e.g. 3)")
    for module in (login, calls, accounts, usage_reports, jobs, batches, evals, tail, webhook_check):
        module.register(commands, common)
    return parser


def run(args: argparse.Namespace) -> int:
    ctx = Context(args)
    try:
        return int(args.run(ctx))
    except CliError as exc:
        if ctx.json and exc.body is not None:
            print_raw_json(exc.body)
        ctx.err.print(f"switchboard: {exc.message}", style="red", markup=False, soft_wrap=True)
        return exc.code
    except KeyboardInterrupt:
        return INTERRUPTED


def main() -> None:
    args = build_parser().parse_args()
    if args.command == "up":
        from tools.cli.up import run_up  # only here: the other commands start faster without its imports

        sys.exit(run_up(nats_nodes=args.nats_cluster))
    sys.exit(run(args))


if __name__ == "__main__":
    main()

"""`switchboard verify-webhook`: is this body signed by this secret? (tools/webhook_verify.py)."""

import argparse
import os
import sys
from pathlib import Path

from tools.cli.context import Context
from tools.cli.exit_codes import FAILED, OK, USAGE, CliError
from tools.cli.output import print_json
from tools.webhook_verify import verify

SECRET_ENV = "SWITCHBOARD_WEBHOOK_SECRET"


def run_verify(ctx: Context) -> int:
    args = ctx.args
    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        raise CliError(USAGE, f"no secret: pass --secret whsec_... or set {SECRET_ENV}")
    try:
        body = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    except OSError as exc:
        raise CliError(USAGE, f"cannot read {args.body}: {exc.strerror or exc}") from exc
    valid = verify(secret, body, args.signature, tolerance_s=args.tolerance)
    if ctx.json:
        print_json({"valid": valid})
    else:
        ctx.out.print("valid" if valid else "invalid", style="green" if valid else "red", markup=False)
    return OK if valid else FAILED


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
             common: argparse.ArgumentParser) -> None:
    check = commands.add_parser("verify-webhook", parents=[common],
                                help="check a webhook's x-aig-signature; exit 0 valid, 1 invalid",
                                description="Check that BODY (the raw bytes received) was signed with the "
                                            "secret (GET /v1/webhook-secret) recently. Offline: no gateway call.")
    check.add_argument("--secret", help=f"the signing secret, whsec_... (or {SECRET_ENV})")
    check.add_argument("--body", required=True, metavar="FILE", help="the raw body as received; - for stdin")
    check.add_argument("--signature", required=True, metavar="HEADER",
                       help="the x-aig-signature header: t=<unix>,v1=<hex>")
    check.add_argument("--tolerance", type=float, default=300, metavar="S",
                       help="refuse signatures older than S seconds (default 300)")
    check.set_defaults(run=run_verify)

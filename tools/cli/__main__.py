"""`switchboard <command>`."""

import argparse
import sys

from tools.cli.up import run_up


def main() -> None:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start NATS and every service on this machine")
    up.add_argument("--nats-cluster", type=int, default=1, metavar="N", choices=range(1, 6),
                    help="run NATS as N clustered servers (data under .data/nats-1..N), "
                         "streams and buckets replicated, to try failover locally (e.g. 3)")
    args = parser.parse_args()
    if args.command == "up":
        sys.exit(run_up(nats_nodes=args.nats_cluster))


if __name__ == "__main__":
    main()

"""`switchboard <command>`."""

import argparse
import sys

from tools.cli.up import run_up


def main() -> None:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start NATS and every service on this machine")
    args = parser.parse_args()
    if args.command == "up":
        sys.exit(run_up())


if __name__ == "__main__":
    main()

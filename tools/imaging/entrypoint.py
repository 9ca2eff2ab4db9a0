"""`switchboard-image SERVICE [ARGS...]`: the container image's entrypoint.

One image runs every part of the gateway; the command picks which: `edge`, `router`, `ledger`,
`jobs`, `webhooks`, `simulator` (the upstream simulator, for tests), `up` (everything in one
container, as `make up` runs it), or `nats-server ...` (the bundled NATS binary, so a cluster
can run from the same image).
"""

import os
import shutil
import sys

MODULES = {
    "edge": "services.edge",
    "router": "services.router",
    "ledger": "services.ledger",
    "jobs": "services.jobs",
    "webhooks": "services.webhooks",
    "simulator": "tools.upstream_sim",
}


def argv_for(args: list[str]) -> list[str]:
    """The command line that `switchboard-image args...` replaces itself with."""
    if not args or args[0] in ("-h", "--help"):
        raise SystemExit(__doc__)
    name, rest = args[0], args[1:]
    if name in MODULES:
        return [sys.executable, "-m", MODULES[name], *rest]
    if name == "up":
        return [sys.executable, "-m", "tools.cli", "up", *rest]
    if name == "nats-server":
        binary = shutil.which("nats-server")
        if binary is None:
            raise SystemExit("nats-server is not installed in this image")
        return [binary, *rest]
    raise SystemExit(f"unknown service {name!r}; one of: {', '.join([*MODULES, 'up', 'nats-server'])}")


def main() -> None:
    argv = argv_for(sys.argv[1:])
    os.execv(argv[0], argv)  # the service is PID 1's only process: signals reach it directly


if __name__ == "__main__":
    main()

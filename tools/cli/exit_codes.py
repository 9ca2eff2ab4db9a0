"""What `switchboard` exits with. Scripts rely on these; docs/cli.md lists them."""

from typing import Final

OK: Final = 0
FAILED: Final = 1  # the gateway answered with an error, a job or batch ended badly, a signature is invalid
USAGE: Final = 2  # bad arguments or unreadable local input (argparse uses 2 as well)
UNREACHABLE: Final = 3  # no gateway answers at the URL, or no API key is configured
TIMED_OUT: Final = 4  # a --wait gave up before the job, batch or eval finished
INTERRUPTED: Final = 130  # Ctrl-C, as shells report SIGINT


class CliError(Exception):
    """Ends the command with `code`; `message` goes to stderr. `body` is the gateway's error
    envelope when there is one (printed as is under --json), `status` its HTTP status."""

    def __init__(self, code: int, message: str, body: bytes | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.body = body
        self.status = status

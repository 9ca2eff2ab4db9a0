"""What every command gets: its arguments, the two consoles, and the gateway on demand."""

import argparse
import os

from tools.cli.exit_codes import UNREACHABLE, CliError
from tools.cli.gateway import Gateway
from tools.cli.login_store import resolve
from tools.cli.output import consoles


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(getattr(args, "json", False))
        self.out, self.err = consoles()
        self._gateway: Gateway | None = None

    def gateway(self) -> Gateway:
        if self._gateway is None:
            target = resolve(getattr(self.args, "url", None), getattr(self.args, "key", None), os.environ)
            if not target.key:
                raise CliError(UNREACHABLE, "no API key: pass --key, set SWITCHBOARD_API_KEY, or run "
                                            "`switchboard login`")
            self._gateway = Gateway(target.url, target.key)
        return self._gateway

    def note(self, message: str, style: str = "dim") -> None:
        """A line for the person at the terminal, on stderr so stdout stays the result."""
        self.err.print(message, style=style, markup=False, soft_wrap=True)

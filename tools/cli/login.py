"""`switchboard login` / `logout`: keep a gateway URL and key in the user's config dir (0600)."""

import argparse
import getpass
import os
import sys

from libs.contracts.http.models import ModelList
from tools.cli.context import Context
from tools.cli.exit_codes import OK, USAGE, CliError
from tools.cli.gateway import Gateway, checked_key, parse
from tools.cli.login_store import DEFAULT_URL, URL_ENV, Login, config_path, read_login, write_login
from tools.cli.output import print_json


def _key(args: argparse.Namespace) -> str:
    key = getattr(args, "key", None)
    if key:
        return checked_key(key)
    if not sys.stdin.isatty():
        line = sys.stdin.readline().strip()  # `... | switchboard login --url ...`
        if not line:
            raise CliError(USAGE, "no key: pass --key, or type it when asked, or pipe it on stdin")
        return checked_key(line)
    return checked_key(getpass.getpass("API key (sk-aig-...): ").strip())


def run_login(ctx: Context) -> int:
    args = ctx.args
    try:
        stored = read_login(config_path(os.environ))
    except CliError:  # an unreadable config is what this login replaces
        stored = None
    url = getattr(args, "url", None) or os.environ.get(URL_ENV) or (stored.url if stored else DEFAULT_URL)
    key = _key(args)
    gateway = Gateway(url, key)
    if not args.no_verify:
        # A wrong key is refused here, before it is stored. The catalog needs the inference scope:
        # a key without it is still a valid key (403, not 401).
        try:
            models = parse(gateway.request("GET", "/models"), ModelList)
            ctx.note(f"{gateway.url} answers: {len(models.data)} models")
        except CliError as exc:
            if exc.status != 403:
                raise
            ctx.note(f"{gateway.url} knows the key (it cannot list models: {exc.message})")
    path = config_path(os.environ)
    write_login(path, Login(url=gateway.url, api_key=key))
    if ctx.json:
        print_json({"url": gateway.url, "config": str(path)})
    else:
        ctx.out.print(f"logged in to {gateway.url}; saved in {path} (mode 0600)", markup=False)
    return OK


def run_logout(ctx: Context) -> int:
    path = config_path(os.environ)
    try:
        path.unlink()
    except FileNotFoundError:
        ctx.note(f"not logged in ({path} does not exist)")
        return OK
    ctx.out.print(f"removed {path}", markup=False)
    return OK


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
             common: argparse.ArgumentParser) -> None:
    login = commands.add_parser("login", parents=[common], help="store a gateway URL and key for later commands",
                                description="Check the key against the gateway and store URL and key in "
                                            "$XDG_CONFIG_HOME/switchboard/config.toml (mode 0600). The key is "
                                            "asked for (not echoed) unless --key is given or it comes on stdin.")
    login.add_argument("--no-verify", action="store_true", help="store without asking the gateway first")
    login.set_defaults(run=run_login)
    logout = commands.add_parser("logout", parents=[common], help="forget the stored URL and key")
    logout.set_defaults(run=run_logout)

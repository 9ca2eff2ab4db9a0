"""Where `switchboard login` keeps the gateway URL and key, and how a command finds them.

The file is `$XDG_CONFIG_HOME/switchboard/config.toml` (`~/.config/...` by default), mode 0600
in a 0700 folder: it holds a secret. Flags win over the environment, which wins over the file.
"""

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import msgspec

from tools.cli.exit_codes import USAGE, CliError

URL_ENV: Final = "SWITCHBOARD_URL"
KEY_ENV: Final = "SWITCHBOARD_API_KEY"
DEFAULT_URL: Final = "http://127.0.0.1:8080/v1"  # what `switchboard up` serves


class Login(msgspec.Struct, kw_only=True):
    url: str
    api_key: str


class Target(msgspec.Struct, kw_only=True):
    """The gateway a command talks to; `key` is None when none is configured anywhere."""

    url: str
    key: str | None


def config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "switchboard" / "config.toml"


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped (TOML forbids
    them raw, DEL included); anything else is written as UTF-8."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def read_login(path: Path) -> Login | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(USAGE, f"cannot read {path}: {exc}") from exc
    try:
        return msgspec.convert(tomllib.loads(text), Login)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise CliError(USAGE, f"{path} is not a valid switchboard config ({exc}); run `switchboard login` "
                              "again") from exc


def write_login(path: Path, login: Login) -> None:
    """Write the file readable by its owner only, from the first byte (never briefly wider)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = f"url = {_toml_string(login.url)}\napi_key = {_toml_string(login.api_key)}\n"
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file of that name keeps its mode through O_CREAT: set it exactly
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


def resolve(url_flag: str | None, key_flag: str | None, env: Mapping[str, str]) -> Target:
    stored = read_login(config_path(env))
    url = url_flag or env.get(URL_ENV) or (stored.url if stored else None) or DEFAULT_URL
    key = key_flag or env.get(KEY_ENV) or (stored.api_key if stored else None)
    return Target(url=url, key=key)

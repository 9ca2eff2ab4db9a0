"""tools/cli/login_store.py: where the login is kept, with which mode, and who wins."""

import os
import stat
import tomllib
from pathlib import Path

import pytest

from tools.cli.exit_codes import USAGE, CliError
from tools.cli.login_store import DEFAULT_URL, Login, config_path, read_login, resolve, write_login


def test_the_config_lives_under_xdg_config_home_or_home(tmp_path: Path) -> None:
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "switchboard" / "config.toml"
    assert config_path({"HOME": str(tmp_path)}) == tmp_path / ".config" / "switchboard" / "config.toml"
    # An empty XDG_CONFIG_HOME means unset (the XDG spec).
    assert config_path({"XDG_CONFIG_HOME": "", "HOME": str(tmp_path)}).parent.parent == tmp_path / ".config"


def test_written_owner_only_whatever_the_umask_and_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "switchboard" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("old")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_login(path, Login(url="http://gw/v1", api_key="sk-aig-x"))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_login(path) == Login(url="http://gw/v1", api_key="sk-aig-x")
    assert not list(path.parent.glob("*.tmp"))


def test_a_new_folder_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "switchboard" / "config.toml"
    write_login(path, Login(url="u", api_key="k"))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("value", ['quote " and \\ backslash', "tab\tnew\nline\r", "del\x7f and \x00 nul",
                                   "à 日本 🙂", "a = 'b' # c", ""])
def test_any_string_survives_the_toml_round_trip(tmp_path: Path, value: str) -> None:
    path = tmp_path / "config.toml"
    write_login(path, Login(url=value, api_key=value))
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {"url": value, "api_key": value}
    assert read_login(path) == Login(url=value, api_key=value)


def test_no_file_is_no_login_and_a_broken_one_is_a_usage_error(tmp_path: Path) -> None:
    assert read_login(tmp_path / "missing.toml") is None
    broken = tmp_path / "broken.toml"
    for text in ("url = ", "url = 3\napi_key = 'k'", "api_key = 'k'"):
        broken.write_text(text)
        with pytest.raises(CliError) as failed:
            read_login(broken)
        assert failed.value.code == USAGE and "switchboard login" in failed.value.message


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert resolve(None, None, env).url == DEFAULT_URL and resolve(None, None, env).key is None
    write_login(config_path(env), Login(url="http://file/v1", api_key="file-key"))
    assert (resolve(None, None, env).url, resolve(None, None, env).key) == ("http://file/v1", "file-key")
    env |= {"SWITCHBOARD_URL": "http://env/v1", "SWITCHBOARD_API_KEY": "env-key"}
    assert (resolve(None, None, env).url, resolve(None, None, env).key) == ("http://env/v1", "env-key")
    chosen = resolve("http://flag/v1", "flag-key", env)
    assert (chosen.url, chosen.key) == ("http://flag/v1", "flag-key")

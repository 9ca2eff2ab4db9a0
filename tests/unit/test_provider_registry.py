"""services.router.providers.build_providers: which adapters the environment and config enable."""

import pytest

from libs.contracts.config import ProviderConfig, RouterConfig
from services.router.providers import adapter_modules, build_providers, known_provider_hints
from services.router.providers.openai_compat import ENV_PROVIDERS, OpenAICompatAdapter


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider variable from the host may leak into these tests."""
    for module in adapter_modules().values():
        for key_env, url_env, _ in getattr(module, "ENV_PROVIDERS", {}).values():
            monkeypatch.delenv(key_env, raising=False)
            monkeypatch.delenv(url_env, raising=False)
    for name in ("LOCAL_KEY", "OTHER_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_discovery_finds_the_openai_adapter() -> None:
    modules = adapter_modules()
    assert modules["openai"].ADAPTER is OpenAICompatAdapter
    hints = known_provider_hints()  # other adapter modules (anthropic, ...) add their own slugs
    assert {slug: key for slug, (key, _, _) in ENV_PROVIDERS.items()}.items() <= hints.items()
    assert hints["anthropic"] == "ANTHROPIC_API_KEY"


def test_nothing_set_enables_nothing() -> None:
    assert build_providers([], RouterConfig()) == {}


def test_openai_key_enables_openai_with_default_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    adapters = build_providers([], RouterConfig())
    assert list(adapters) == ["openai"]
    adapter = adapters["openai"]
    assert isinstance(adapter, OpenAICompatAdapter)
    assert adapter.slug == "openai" and adapter.settings.kind == "openai"
    assert adapter.settings.base_url == "https://api.openai.com/v1"
    assert adapter.settings.api_key == "sk-test"
    assert (adapter.settings.connect_timeout_s, adapter.settings.read_timeout_s) == (5.0, 120.0)
    assert (adapter.settings.max_connections, adapter.settings.pool_timeout_s) == (4096, 1.0)


def test_base_url_variable_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.internal/v1")
    assert build_providers([], RouterConfig())["openai"].settings.base_url == "http://proxy.internal/v1"


def test_base_url_alone_enables_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.internal/v1")
    monkeypatch.setenv("GROQ_BASE_URL", "http://groq.internal/v1")
    assert build_providers([], RouterConfig()) == {}


def test_several_env_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk")
    monkeypatch.setenv("SIM_API_KEY", "sim")
    adapters = build_providers([], RouterConfig())
    assert set(adapters) == {"groq", "sim"}
    assert adapters["groq"].settings.base_url == "https://api.groq.com/openai/v1"
    assert adapters["sim"].settings.api_key == "sim"


def test_config_provider_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    local = ProviderConfig(slug="local", base_url="http://127.0.0.1:8000/v1", api_key_env="LOCAL_KEY")
    assert build_providers([local], RouterConfig()) == {}
    monkeypatch.setenv("LOCAL_KEY", "lk")
    adapters = build_providers([local], RouterConfig())
    assert list(adapters) == ["local"]
    assert adapters["local"].settings.base_url == "http://127.0.0.1:8000/v1"
    assert adapters["local"].settings.api_key == "lk"


def test_config_provider_without_base_url_or_key_env_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_KEY", "lk")
    configs = [ProviderConfig(slug="nourl", api_key_env="LOCAL_KEY"),
               ProviderConfig(slug="nokey", base_url="http://127.0.0.1:8000/v1")]
    assert build_providers(configs, RouterConfig()) == {}


def test_config_for_env_provider_keeps_env_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = ProviderConfig(slug="openai", api_key_env="OPENAI_API_KEY", read_timeout_s=30)
    assert build_providers([config], RouterConfig())["openai"].settings.base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.internal/v1")
    adapter = build_providers([config], RouterConfig())["openai"]
    assert adapter.settings.base_url == "http://proxy.internal/v1"
    assert adapter.settings.read_timeout_s == 30


def test_config_entry_refining_an_env_provider_keeps_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    adapter = build_providers([ProviderConfig(slug="openai", read_timeout_s=30)], RouterConfig())["openai"]
    assert adapter.settings.api_key == "sk-test" and adapter.settings.read_timeout_s == 30


def test_config_base_url_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.internal/v1")
    monkeypatch.setenv("OTHER_KEY", "other")
    config = ProviderConfig(slug="openai", base_url="http://azure.example/v1", api_key_env="OTHER_KEY")
    adapter = build_providers([config], RouterConfig())["openai"]
    assert (adapter.settings.base_url, adapter.settings.api_key) == ("http://azure.example/v1", "other")


def test_unknown_kind_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_KEY", "lk")
    config = ProviderConfig(slug="local", base_url="http://x/v1", api_key_env="LOCAL_KEY", kind="grpc-magic")
    with pytest.raises(SystemExit, match=r"provider 'local' has unknown kind 'grpc-magic'"):
        build_providers([config], RouterConfig())


def test_unknown_kind_without_key_is_not_checked() -> None:
    config = ProviderConfig(slug="local", base_url="http://x/v1", api_key_env="LOCAL_KEY", kind="grpc-magic")
    assert build_providers([config], RouterConfig()) == {}


def test_router_timeouts_and_per_provider_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("LOCAL_KEY", "lk")
    router = RouterConfig(connect_timeout_s=2.5, read_timeout_s=45.0, max_connections_per_provider=16,
                          pool_timeout_s=0.5)
    local = ProviderConfig(slug="local", base_url="http://127.0.0.1:8000/v1", api_key_env="LOCAL_KEY",
                           connect_timeout_s=0.5, read_timeout_s=600.0, max_connections=10000, pool_timeout_s=2.0)
    adapters = build_providers([local], router)
    openai = adapters["openai"].settings
    assert (openai.connect_timeout_s, openai.read_timeout_s, openai.max_connections) == (2.5, 45.0, 16)
    assert openai.pool_timeout_s == 0.5
    mine = adapters["local"].settings
    assert (mine.connect_timeout_s, mine.read_timeout_s, mine.max_connections) == (0.5, 600.0, 10000)
    assert mine.pool_timeout_s == 2.0


def test_per_provider_read_override_alone_falls_back_for_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_KEY", "lk")
    local = ProviderConfig(slug="local", base_url="http://h/v1", api_key_env="LOCAL_KEY", read_timeout_s=9.0)
    settings = build_providers([local], RouterConfig(connect_timeout_s=1.5))["local"].settings
    assert (settings.connect_timeout_s, settings.read_timeout_s) == (1.5, 9.0)

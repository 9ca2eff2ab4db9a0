"""Provider adapters, one module per wire format, found by discovery.

A module here that defines `ADAPTER` (a ProviderAdapter subclass) is an adapter
for `ADAPTER.kind`; one that defines `LONGRUN` (a LongRunAdapter subclass,
longrun_base.py) drives that kind's long-running generations (video, music, 3D).
A kind may have either or both. If a module also defines `ENV_PROVIDERS` (slug ->
key variable, base-URL variable, default base URL) those providers switch on from
the environment alone. Adding a provider therefore touches its module and the
catalog, nothing else.
"""

import importlib
import os
import pkgutil

import msgspec

from libs.contracts.config import ProviderConfig, RouterConfig
from services.router.providers.base import ProviderAdapter, ProviderSettings
from services.router.providers.longrun_base import LongRunAdapter


def _modules_with(attribute: str) -> dict[str, object]:
    modules: dict[str, object] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found = getattr(module, attribute, None)
        if found is not None:
            modules[found.kind] = module
    return modules


def adapter_modules() -> dict[str, object]:
    return _modules_with("ADAPTER")


def longrun_modules() -> dict[str, object]:
    return _modules_with("LONGRUN")


def _env_modules() -> dict[object, str]:
    """Every module that may declare ENV_PROVIDERS -> the kind it serves."""
    found = {module: kind for kind, module in longrun_modules().items()}
    found.update({module: kind for kind, module in adapter_modules().items()})
    return found


def _enabled(configured: list[ProviderConfig], router: RouterConfig) -> dict[str, ProviderSettings]:
    """Settings of every provider enabled by the environment or the config file.

    A provider needs a key to be enabled; the config file wins over the
    environment defaults for the same slug.
    """
    modules = _env_modules()
    kinds = set(modules.values())
    declared: dict[str, ProviderConfig] = {}
    for module, kind in modules.items():
        for slug, (key_env, url_env, default_url) in getattr(module, "ENV_PROVIDERS", {}).items():
            declared[slug] = ProviderConfig(
                slug=slug, kind=kind, api_key_env=key_env, base_url=os.environ.get(url_env) or default_url
            )
    for provider in configured:
        base = declared.get(provider.slug)
        if base is not None:
            # A file entry for an environment-known provider refines it (timeouts, URL);
            # whatever it leaves out comes from the built-in definition.
            provider = msgspec.structs.replace(
                provider,
                base_url=provider.base_url or base.base_url,
                api_key_env=provider.api_key_env or base.api_key_env,
            )
        declared[provider.slug] = provider

    enabled: dict[str, ProviderSettings] = {}
    for slug, provider in declared.items():
        key = os.environ.get(provider.api_key_env or "", "")
        if not key or not provider.base_url:
            continue
        if provider.kind not in kinds:
            raise SystemExit(f"switchboard: provider {slug!r} has unknown kind {provider.kind!r}")
        enabled[slug] = ProviderSettings(
            slug=slug,
            kind=provider.kind,
            base_url=provider.base_url,
            api_key=key,
            connect_timeout_s=provider.connect_timeout_s or router.connect_timeout_s or 5.0,
            read_timeout_s=provider.read_timeout_s or router.read_timeout_s or 120.0,
            max_connections=provider.max_connections or router.max_connections_per_provider or 4096,
            pool_timeout_s=provider.pool_timeout_s or router.pool_timeout_s or 1.0,
        )
    return enabled


def build_providers(configured: list[ProviderConfig], router: RouterConfig) -> dict[str, ProviderAdapter]:
    """Adapters (chat, embeddings, media) for every enabled provider whose kind has one."""
    modules = adapter_modules()
    return {slug: modules[settings.kind].ADAPTER(settings)  # type: ignore[attr-defined]
            for slug, settings in _enabled(configured, router).items() if settings.kind in modules}


def build_longrun(configured: list[ProviderConfig], router: RouterConfig) -> dict[str, LongRunAdapter]:
    """Long-running generation adapters for every enabled provider whose kind has one."""
    modules = longrun_modules()
    return {slug: modules[settings.kind].LONGRUN(settings)  # type: ignore[attr-defined]
            for slug, settings in _enabled(configured, router).items() if settings.kind in modules}


def known_provider_hints() -> dict[str, str]:
    """slug -> environment variable that would enable it (for 'not configured' errors)."""
    hints: dict[str, str] = {}
    for module in _env_modules():
        for slug, (key_env, _, _) in getattr(module, "ENV_PROVIDERS", {}).items():
            hints[slug] = key_env
    return hints

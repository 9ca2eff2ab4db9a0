"""services.router.catalog: slug resolution, passthrough, not-found messages, listings, cards."""

import pytest

from libs.contracts import errors
from libs.contracts.config import ModelConfig
from libs.contracts.http.models import ModelCard, Pricing
from services.router.catalog import DEFAULT_CATALOG, Catalog, Route, RouteError
from services.router.pricing import Price
from services.router.providers import known_provider_hints


def _catalog(enabled: set[str] | None = None, overrides: list[ModelConfig] | None = None) -> Catalog:
    return Catalog.load(DEFAULT_CATALOG, overrides or [], {"openai"} if enabled is None else enabled,
                        known_provider_hints())


def _not_found(catalog: Catalog, slug: str) -> str:
    with pytest.raises(RouteError) as info:
        catalog.resolve(slug)
    assert (info.value.status, info.value.type) == (404, errors.MODEL_NOT_FOUND)
    assert str(info.value) == info.value.message
    return info.value.message


def test_default_catalog_is_the_repo_file() -> None:
    assert DEFAULT_CATALOG.name == "models.toml" and DEFAULT_CATALOG.parent.name == "catalog"
    assert DEFAULT_CATALOG.is_file()


def test_hints_cover_env_providers() -> None:
    hints = known_provider_hints()
    assert hints["openai"] == "OPENAI_API_KEY"
    assert hints["groq"] == "GROQ_API_KEY"


def test_resolve_catalog_slug() -> None:
    catalog = _catalog()
    assert catalog.resolve("openai/gpt-4o-mini") == Route("openai/gpt-4o-mini", "openai", "gpt-4o-mini",
                                                          Price(input=150_000, output=600_000, cached_input=150_000))
    assert catalog.resolve("openai/text-embedding-3-small").upstream_model == "text-embedding-3-small"


@pytest.mark.parametrize(("slug", "upstream"), [
    ("openai/gpt-5-preview", "gpt-5-preview"),
    ("openai/ft:gpt-4o:org/x", "ft:gpt-4o:org/x"),
    ("openai/a/b/c", "a/b/c"),
])
def test_passthrough_under_enabled_provider_is_unpriced(slug: str, upstream: str) -> None:
    assert _catalog().resolve(slug) == Route(slug, "openai", upstream, None)


def test_slug_without_provider_is_404_pointing_at_models() -> None:
    message = _not_found(_catalog(), "gpt-4o")
    assert "'gpt-4o' is not a provider/model slug" in message
    assert "GET /v1/models" in message


@pytest.mark.parametrize("slug", ["groq/llama-3.3-70b-versatile", "groq/some-unlisted-model"])
def test_known_but_disabled_provider_names_its_env_var(slug: str) -> None:
    message = _not_found(_catalog(), slug)
    assert "Provider 'groq' is not configured" in message
    assert "set GROQ_API_KEY" in message


def test_catalog_provider_without_hint_says_declare_in_config() -> None:
    catalog = _catalog(overrides=[ModelConfig(id="local/llama", input_per_mtok=0.1)])
    message = _not_found(catalog, "local/llama")
    assert "Provider 'local' is not configured" in message and "declare it in the config file" in message


def test_unknown_provider_is_plain_not_found() -> None:
    message = _not_found(_catalog(), "nosuch/model")
    assert message.startswith("Model 'nosuch/model' not found.")
    assert "GET /v1/models" in message


def test_enabling_a_provider_makes_its_models_routable() -> None:
    catalog = _catalog({"openai", "groq"})
    route = catalog.resolve("groq/llama-3.3-70b-versatile")
    assert route == Route("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile",
                          Price(590_000, 790_000, 590_000))
    assert _catalog({"together"}).resolve("together/meta-llama/Llama-3.3-70B-Instruct-Turbo").upstream_model == (
        "meta-llama/Llama-3.3-70B-Instruct-Turbo")


def test_nothing_enabled_resolves_nothing() -> None:
    catalog = _catalog(set())
    _not_found(catalog, "openai/gpt-4o")
    assert catalog.listing().data == []


def test_listing_only_enabled_providers_sorted() -> None:
    ids = [c.id for c in _catalog().listing().data]
    assert ids == sorted(ids)
    assert "openai/gpt-4o" in ids and "openai/text-embedding-3-large" in ids
    assert all(i.startswith("openai/") for i in ids)
    both = [c.id for c in _catalog({"openai", "groq"}).listing().data]
    assert "groq/llama-3.3-70b-versatile" in both and both == sorted(both)
    assert _catalog().listing().object == "list"


def test_listing_filters_by_provider_and_modality() -> None:
    catalog = _catalog({"openai", "sim"})
    sim = catalog.listing(provider="sim").data
    assert [c.id for c in sim] == ["sim/embed-sim", "sim/gpt-sim", "sim/image-sim", "sim/moderation-sim",
                                   "sim/tts-sim", "sim/video-sim", "sim/whisper-sim"]
    assert [c.id for c in catalog.listing(provider="sim", modality="image").data] == ["sim/image-sim"]
    embeddings = catalog.listing(modality="embedding").data
    assert {c.id for c in embeddings} == {"openai/text-embedding-3-small", "openai/text-embedding-3-large",
                                          "sim/embed-sim"}
    assert [c.id for c in catalog.listing(provider="sim", modality="text").data] == ["sim/gpt-sim"]
    assert catalog.listing(provider="groq").data == []  # in the catalog but not enabled
    assert catalog.listing(modality="audio").data == []


def test_card_for_catalog_slug() -> None:
    card = _catalog().card("openai/gpt-4o")
    assert card.id == "openai/gpt-4o" and card.object == "model"
    assert (card.provider, card.owned_by, card.upstream_model) == ("openai", "openai", "gpt-4o")
    assert card.context_window == 128000 and card.modality == "text"
    assert "tools" in card.capabilities
    assert card.pricing == Pricing(2.5, 10.0) and card.priced is True


def test_card_for_embedding_has_no_output_price() -> None:
    card = _catalog().card("openai/text-embedding-3-small")
    assert card.pricing == Pricing(0.02, None) and card.modality == "embedding"


def test_card_for_passthrough_slug() -> None:
    card = _catalog().card("openai/ft:gpt-4o:org/x")
    assert card == ModelCard(id="openai/ft:gpt-4o:org/x", owned_by="openai", provider="openai",
                             upstream_model="ft:gpt-4o:org/x", priced=False)
    assert card.pricing is None


def test_card_for_unroutable_slug_raises() -> None:
    with pytest.raises(RouteError):
        _catalog().card("groq/llama-3.3-70b-versatile")


def test_overrides_replace_and_add_entries() -> None:
    overrides = [
        ModelConfig(id="openai/gpt-4o", upstream="gpt-4o-2024-11-20", input_per_mtok=2.0, output_per_mtok=8.0,
                    capabilities=["chat"]),
        ModelConfig(id="openai/my-ft", upstream="ft:gpt-4o-mini:acme::abc", context_window=4096,
                    owned_by="acme", modality="text"),
        ModelConfig(id="local/llama", input_per_mtok=0.0, output_per_mtok=0.0),
    ]
    catalog = _catalog({"openai", "local"}, overrides)
    replaced = catalog.card("openai/gpt-4o")
    assert replaced.upstream_model == "gpt-4o-2024-11-20"
    assert replaced.pricing == Pricing(2.0, 8.0) and replaced.capabilities == ["chat"]
    assert catalog.resolve("openai/gpt-4o").upstream_model == "gpt-4o-2024-11-20"

    added = catalog.card("openai/my-ft")
    assert (added.owned_by, added.context_window, added.priced, added.pricing) == ("acme", 4096, False, None)
    assert catalog.resolve("openai/my-ft") == Route("openai/my-ft", "openai", "ft:gpt-4o-mini:acme::abc", None)

    local = catalog.resolve("local/llama")  # upstream defaults to the slug's rest; price 0 is still priced
    assert local == Route("local/llama", "local", "llama", Price(0, 0, 0))

    ids = [c.id for c in catalog.listing().data]
    assert ids.count("openai/gpt-4o") == 1 and "openai/my-ft" in ids and "local/llama" in ids
    assert ids == sorted(ids)


def test_slug_with_empty_model_is_404_naming_the_problem() -> None:
    message = _not_found(_catalog({"openai"}), "openai/")
    assert "names no model" in message and "not configured" not in message

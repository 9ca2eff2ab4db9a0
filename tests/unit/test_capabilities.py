"""services/router/capabilities.py: which models an operation may be sent to."""

import pytest

from libs.contracts.bus.inference import OP_CHAT, OP_DETECTIONS, OP_EMBEDDINGS, OP_IMAGE_EDITS, OP_MESSAGES
from libs.contracts.config import ModelConfig
from services.router.capabilities import NEEDS, admit
from services.router.catalog import DEFAULT_CATALOG, Catalog, RouteError


def _catalog(*overrides: ModelConfig) -> Catalog:
    return Catalog.load(DEFAULT_CATALOG, list(overrides), {"openai", "sim", "local"}, {})


def test_every_need_names_a_modality_the_catalog_uses() -> None:
    catalog = _catalog()
    modalities = {c.modality for c in catalog.listing().data}
    assert {need.modality for need in NEEDS.values()} <= modalities


def test_a_catalog_model_of_another_modality_is_refused_with_suggestions() -> None:
    catalog = _catalog()
    with pytest.raises(RouteError) as err:
        admit(catalog, OP_EMBEDDINGS, catalog.plan("openai/gpt-4o"), [])
    assert (err.value.status, err.value.type, err.value.param) == (400, "invalid_request_error", "model")
    assert "'openai/gpt-4o' is a text model" in err.value.message
    # The model's own provider first, at most three.
    assert "try openai/text-embedding-3-large, openai/text-embedding-3-small, sim/embed-sim" in err.value.message


def test_capabilities_matter_within_a_modality() -> None:
    catalog = _catalog()
    with pytest.raises(RouteError) as err:
        admit(catalog, OP_IMAGE_EDITS, catalog.plan("openai/dall-e-3"), [])
    assert "without image_edits" in err.value.message
    assert admit(catalog, OP_DETECTIONS, catalog.plan("sim/gpt-sim"), [])[0] == catalog.plan("sim/gpt-sim")


def test_fallbacks_and_models_that_cannot_serve_are_dropped() -> None:
    catalog = _catalog(ModelConfig(id="local/chat", capabilities=["chat"],
                                   fallbacks=["sim/embed-sim", "sim/gpt-sim", "local/unknown"]))
    plan, models = admit(catalog, OP_MESSAGES, catalog.plan("local/chat"),
                         ["openai/tts-1", "openai/gpt-4o", "openai/not-catalogued"])
    assert plan.fallbacks == ("sim/gpt-sim", "local/unknown")
    assert models == ["openai/gpt-4o", "openai/not-catalogued"]


def test_passthrough_and_undeclared_capabilities_go_to_the_provider() -> None:
    catalog = _catalog(ModelConfig(id="local/bge", upstream="bge"))  # no capabilities declared
    for slug in ("local/bge", "openai/not-in-the-catalog", "sim/gpt-sim+cut_after=3"):
        plan = catalog.plan(slug)
        assert admit(catalog, OP_EMBEDDINGS, plan, []) == (plan, [])
    plan = catalog.plan("openai/gpt-4o")
    assert admit(catalog, "some.future.operation", plan, ["openai/tts-1"]) == (plan, ["openai/tts-1"])
    assert admit(catalog, OP_CHAT, plan, []) == (plan, [])

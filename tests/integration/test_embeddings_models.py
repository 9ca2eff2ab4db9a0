"""Embeddings and the model catalog through the gateway."""

import httpx
import openai
import pytest

from tests.integration.cluster import UPSTREAM_KEY, Cluster


def test_embeddings_float_and_base64_match_the_provider(gateway: Cluster) -> None:
    direct = openai.OpenAI(base_url=f"{gateway.sim_url}/v1", api_key=UPSTREAM_KEY)
    expected = direct.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"],
                                        encoding_format="float")
    client = gateway.client()
    as_float = client.embeddings.create(model="openai/text-embedding-3-small", input=["alpha", "beta"],
                                        encoding_format="float")
    as_b64 = client.embeddings.create(model="openai/text-embedding-3-small", input=["alpha", "beta"])
    assert [d.embedding for d in as_float.data] == [d.embedding for d in expected.data]
    for got, want in zip(as_b64.data, expected.data, strict=True):
        assert got.embedding == pytest.approx(want.embedding, rel=1e-6)
    assert as_float.usage.prompt_tokens == expected.usage.prompt_tokens


def test_embeddings_headers_and_dimensions(gateway: Cluster) -> None:
    raw = gateway.client().embeddings.with_raw_response.create(
        model="sim/embed-sim", input="one two three", dimensions=7, encoding_format="float")
    assert len(raw.parse().data[0].embedding) == 7
    assert raw.headers["X-Model"] == "sim/embed-sim"
    assert raw.headers["X-Provider"] == "sim"


def test_embeddings_reject_bad_input(gateway: Cluster) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().embeddings.create(model="openai/text-embedding-3-small", input=[])
    assert err.value.status_code == 400
    assert err.value.body["type"] == "invalid_request_error"


def test_models_list_and_retrieve(gateway: Cluster) -> None:
    client = gateway.client()
    ids = [m.id for m in client.models.list()]
    assert "openai/gpt-4o-mini" in ids and "sim/gpt-sim" in ids
    assert not any(i.startswith("groq/") for i in ids)  # groq has no key here
    model = client.models.retrieve("openai/gpt-4o-mini")
    assert model.id == "openai/gpt-4o-mini" and model.object == "model"
    extra = model.model_extra or {}
    assert extra["pricing"]["input_per_mtok"] == 0.15
    assert extra["modality"] == "text" and extra["context_window"] == 128000


def test_models_filters(gateway: Cluster) -> None:
    response = httpx.get(f"{gateway.base_url}/models", params={"modality": "embedding"},
                         headers={"Authorization": f"Bearer {gateway.admin_key}"})
    assert response.status_code == 200
    assert {m["modality"] for m in response.json()["data"]} == {"embedding"}
    response = httpx.get(f"{gateway.base_url}/models", params={"provider": "sim"},
                         headers={"Authorization": f"Bearer {gateway.admin_key}"})
    assert {m["provider"] for m in response.json()["data"]} == {"sim"}
    bad = httpx.get(f"{gateway.base_url}/models", params={"modality": "smell"},
                    headers={"Authorization": f"Bearer {gateway.admin_key}"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "modality"


def test_retrieve_passthrough_and_unknown_models(gateway: Cluster) -> None:
    client = gateway.client()
    unpriced = client.models.retrieve("openai/brand-new-model")
    assert (unpriced.model_extra or {})["priced"] is False
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("nosuch/model")
    assert err.value.body["type"] == "model_not_found"
    assert "/v1/models" in err.value.body["message"]


def test_models_require_a_key(gateway: Cluster) -> None:
    with pytest.raises(openai.AuthenticationError):
        gateway.client(key="sk-aig-wrong").models.list()

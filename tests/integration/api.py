"""Small HTTP helpers for the gateway's non-OpenAI endpoints (management, usage)."""

from typing import Any

import httpx

from tests.integration.cluster import Cluster, eventually


def call(gateway: Cluster, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or gateway.admin_key}"}
    return httpx.request(method, f"{gateway.base_url}{path}", headers=headers, timeout=15, **kwargs)


def create_sub_account(gateway: Cluster, **fields: Any) -> dict[str, Any]:
    body = {"name": "customer", "spend_cap_cents": 0, **fields}
    response = call(gateway, "POST", "/sub-accounts", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def generation(gateway: Cluster, request_id: str, key: str | None = None, timeout_s: float = 10) -> dict[str, Any]:
    """Poll /v1/generations until the ledger has stored the request."""

    def fetch() -> dict[str, Any] | None:
        response = call(gateway, "GET", "/generations", key, params={"id": request_id})
        return response.json() if response.status_code == 200 else None

    return eventually(fetch, timeout_s)

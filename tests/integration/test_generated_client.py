"""A Python client generated from the served document with openapi-python-client completes a
smoke flow against the test gateway: list models, create a sub-account, make a tagged call
with its key, and read the usage by tag.

The generator must take the whole document without a warning: a construct it cannot
handle (and silently drops from the client) is a document bug to fix.
"""

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.integration.cluster import Cluster, eventually

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "switchboard_api_client"
# Downloads answer the file's own media type, so the document says */* (and audio/*, ...):
# the generator reads those bodies as bytes when told to.
CONFIG = f"""package_name_override: {PACKAGE}
post_hooks: []
content_type_overrides:
  "*/*": application/octet-stream
  application/binary: application/octet-stream
  audio/*: application/octet-stream
  video/*: application/octet-stream
  image/*: application/octet-stream
  text/*: text/plain
"""
_WARNINGS = ("Unable to", "Cannot parse", "Invalid property", "WARNING", "Failure to process")


@pytest.fixture(scope="module")
def client_package(gateway: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    root = tmp_path_factory.mktemp("generated")
    document = httpx.get(f"{gateway.base_url.removesuffix('/v1')}/openapi.json", timeout=15)
    assert document.status_code == 200
    (root / "openapi.json").write_bytes(document.content)
    (root / "config.yaml").write_text(CONFIG)
    run = subprocess.run([str(GENERATOR), "generate", "--path", str(root / "openapi.json"), "--output-path",
                          str(root / PACKAGE), "--meta", "none", "--config", str(root / "config.yaml")],
                         capture_output=True, text=True, timeout=180, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert not [line for line in output.splitlines() if line.startswith(_WARNINGS)], output
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_the_generated_client_lists_models_creates_a_sub_account_and_reads_usage_by_tag(
        gateway: Cluster, client_package: ModuleType) -> None:
    models = _module(client_package, "models")
    origin = gateway.base_url.removesuffix("/v1")
    admin = client_package.AuthenticatedClient(base_url=origin, token=gateway.admin_key,
                                               raise_on_unexpected_status=True)

    listed = _module(client_package, "api.models.list_models").sync(client=admin)
    assert isinstance(listed, models.ModelList), listed
    assert "sim/gpt-sim" in {card.id for card in listed.data}

    tag = f"generated-{uuid.uuid4().hex[:8]}"
    created = _module(client_package, "api.sub_accounts.create_sub_account").sync(
        client=admin, body=models.SubAccountCreate(name="generated client", spend_cap_cents=0, default_tag=tag))
    assert isinstance(created, models.SubAccountView), created
    assert created.default_tag == tag and isinstance(created.key, str)

    customer = client_package.AuthenticatedClient(base_url=origin, token=created.key,
                                                  raise_on_unexpected_status=True)
    chat = _module(client_package, "api.chat.create_chat_completion").sync(
        client=customer, body=models.ChatCompletionRequest(
            messages=[models.ChatMessage(role=models.ChatMessageRole.USER, content="hello")],
            model="sim/gpt-sim", max_tokens=8))
    assert isinstance(chat, models.ChatCompletion), chat
    assert chat.choices and chat.model

    by_tag = _module(client_package, "api.usage.usage_by_tag")

    def tagged_row() -> Any:
        report = by_tag.sync(client=admin, tag=tag)
        assert isinstance(report, models.UsageReport), report
        rows = [row for row in report.data if row.group == tag]
        return rows[0] if rows and rows[0].requests == 1 else None

    row = eventually(tagged_row, timeout_s=15)
    assert row.cost_micros >= 0 and row.input_units > 0


def test_errors_come_back_as_the_envelope_model(gateway: Cluster, client_package: ModuleType) -> None:
    models = _module(client_package, "models")
    origin = gateway.base_url.removesuffix("/v1")
    wrong = client_package.AuthenticatedClient(base_url=origin, token="sk-aig-wrong")
    answer = _module(client_package, "api.models.list_models").sync(client=wrong)
    assert isinstance(answer, models.ErrorEnvelope)
    assert answer.error.code == 401 and answer.error.type_ == "authentication_error"  # `type` is a builtin
    admin = client_package.AuthenticatedClient(base_url=origin, token=gateway.admin_key)
    missing = _module(client_package, "api.sub_accounts.get_sub_account").sync(client=admin, id="a.b")
    assert isinstance(missing, models.ErrorEnvelope) and missing.error.code == 404

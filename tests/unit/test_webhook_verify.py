"""tools/webhook_verify.py, and that it, the standardwebhooks package and the service's signer agree."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from services.webhooks.signing import aig_signature, delivery_headers, new_secret, standard_signature
from tools.webhook_verify import verify, verify_standard

BODY = b'{"id":"evt_1","type":"job.completed","occurred_at":1700000000,"data":{"job_id":"job_1"}}'
NOW = 1_700_000_000


def test_signer_and_verifier_agree() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    header = aig_signature([secret], NOW, BODY)
    assert header.startswith(f"t={NOW},v1=")
    assert verify(secret, BODY, header, now=NOW)
    assert verify_standard(secret, "dlv_1", str(NOW), BODY, standard_signature([secret], "dlv_1", NOW, BODY), now=NOW)


def test_signature_is_the_documented_hmac() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    expected = hmac.new(secret.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert aig_signature([secret], NOW, BODY) == f"t={NOW},v1={expected}"


@pytest.mark.parametrize("tamper", ["body", "secret", "timestamp"])
def test_tampering_fails(tamper: str) -> None:
    secret = new_secret()
    header = aig_signature([secret], NOW, BODY)
    if tamper == "body":
        assert not verify(secret, BODY + b" ", header, now=NOW)
    elif tamper == "secret":
        assert not verify(new_secret(), BODY, header, now=NOW)
    else:
        assert not verify(secret, BODY, header.replace(f"t={NOW}", f"t={NOW + 1}"), now=NOW)


def test_old_timestamps_are_refused() -> None:
    secret = new_secret()
    header = aig_signature([secret], NOW, BODY)
    assert verify(secret, BODY, header, now=NOW + 299)
    assert not verify(secret, BODY, header, now=NOW + 301)
    assert verify(secret, BODY, header, tolerance_s=3600, now=NOW + 301)


@pytest.mark.parametrize("header", ["", "garbage", "t=,v1=", "v1=abc", f"t={NOW}", "t=x,v1=00", "t=1,,v1"])
def test_malformed_headers_are_refused(header: str) -> None:
    assert not verify(new_secret(), BODY, header, now=NOW)


def test_rotation_sends_two_signatures_either_verifies() -> None:
    old, new = new_secret(), new_secret()
    header = aig_signature([new, old], NOW, BODY)
    assert header.count("v1=") == 2
    assert verify(old, BODY, header, now=NOW) and verify(new, BODY, header, now=NOW)
    assert not verify(new_secret(), BODY, header, now=NOW)
    standard = standard_signature([new, old], "dlv_1", NOW, BODY)
    assert len(standard.split(" ")) == 2
    assert verify_standard(old, "dlv_1", str(NOW), BODY, standard, now=NOW)
    assert verify_standard(new, "dlv_1", str(NOW), BODY, standard, now=NOW)


@pytest.mark.parametrize("header", ["", "v1", "v1,", "v1,!!!", "v2,AAAA"])
def test_standard_malformed_refused(header: str) -> None:
    assert not verify_standard(new_secret(), "dlv_1", str(NOW), BODY, header, now=NOW)


def test_standard_wrong_id_or_bad_secret_refused() -> None:
    secret = new_secret()
    header = standard_signature([secret], "dlv_1", NOW, BODY)
    assert not verify_standard(secret, "dlv_2", str(NOW), BODY, header, now=NOW)
    assert not verify_standard("whsec_not base64!", "dlv_1", str(NOW), BODY, header, now=NOW)
    assert not verify_standard(secret, "dlv_1", "soon", BODY, header, now=NOW)


def test_standardwebhooks_package_verifies_our_headers() -> None:
    old, new = new_secret(), new_secret()
    now = int(datetime.now(tz=UTC).timestamp())
    headers = delivery_headers([new, old], "dlv_abc", "job.completed", 2, now, BODY)
    assert headers["webhook-id"] == headers["x-aig-delivery-id"] == "dlv_abc"
    assert headers["x-aig-attempt"] == "2" and headers["x-aig-event-type"] == "job.completed"
    for secret in (new, old):
        assert Webhook(secret).verify(BODY, headers)["id"] == "evt_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    # And the package's own signature verifies with our helper.
    stamp = datetime.fromtimestamp(now, tz=UTC)
    theirs = Webhook(new).sign("dlv_abc", stamp, BODY.decode())
    assert verify_standard(new, "dlv_abc", str(now), BODY, theirs)

"""UrlSigner: untampered, unexpired links verify; anything changed does not."""

from services.edge.signed_urls import KIND_FILE, KIND_JOB, UrlSigner

NOW = 1_800_000_000.0


def _args(**changes: str) -> dict[str, str]:
    base = {"kind": KIND_JOB, "account_id": "root", "target": "job_1", "filename": "out.mp4",
            "expires": str(int(NOW) + 60)}
    return {**base, **changes}


def test_valid_link() -> None:
    signer = UrlSigner(b"k" * 32)
    args = _args()
    signature = signer.signature(args["kind"], args["account_id"], args["target"], args["filename"],
                                 int(args["expires"]))
    assert signer.valid(**args, signature=signature, now=NOW)


def test_any_change_fails() -> None:
    signer = UrlSigner(b"k" * 32)
    args = _args()
    signature = signer.signature(KIND_JOB, "root", "job_1", "out.mp4", int(NOW) + 60)
    for changed in (_args(kind=KIND_FILE), _args(account_id="other"), _args(target="job_2"),
                    _args(filename="out.mp5"), _args(expires=str(int(NOW) + 61))):
        assert not signer.valid(**changed, signature=signature, now=NOW)
    assert not signer.valid(**args, signature=signature[:-1] + ("0" if signature[-1] != "0" else "1"), now=NOW)
    assert not signer.valid(**args, signature="", now=NOW)
    assert not signer.valid(**args, signature="é" * 64, now=NOW)
    assert not UrlSigner(b"other key").valid(**args, signature=signature, now=NOW)


def test_expired_and_malformed_expiry() -> None:
    signer = UrlSigner(b"k")
    expires = int(NOW) + 60
    signature = signer.signature(KIND_JOB, "root", "job_1", "out.mp4", expires)
    assert not signer.valid(**_args(), signature=signature, now=expires)
    for bad in ("", "-1", "1e9", "9" * 40, " 1", "\u00b2\u00b3"):  # superscripts: isdigit() but not int()
        assert not signer.valid(**_args(expires=bad), signature=signature, now=NOW)


def test_fields_cannot_shift_into_each_other() -> None:
    signer = UrlSigner(b"k")
    assert signer.signature(KIND_JOB, "ro", "otjob", "f", 1) != signer.signature(KIND_JOB, "root", "job", "f", 1)

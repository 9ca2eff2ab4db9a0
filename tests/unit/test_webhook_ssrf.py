"""services.webhooks.ssrf: which addresses a webhook may go to, and the allow-list."""

import ipaddress

import pytest

from services.webhooks.ssrf import AllowList, Guard, RefusedUrl, refusal


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "fc00::1", "fd12:3456::1",
    "169.254.169.254", "169.254.1.1", "fe80::1", "fd00:ec2::254", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
    "100.64.0.1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a00:1", "192.0.2.1",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_metadata_is_named() -> None:
    assert refusal(ipaddress.ip_address("169.254.169.254")) == "a cloud metadata address"
    assert refusal(ipaddress.ip_address("fd00:ec2::254")) == "a cloud metadata address"


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://[::1]:8080/", "http://[fd00:ec2::254]/",
    "ftp://example.com/", "file:///etc/passwd", "gopher://example.com/", "http:///nohost", "example.com/hook",
    "http://example.com:0/", "http://example.com:99999/", "http://exa mple.com/", "http://example.com/\n",
    "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(RefusedUrl):
        Guard(AllowList()).check_url(url)


def test_allow_list_names_ips_and_cidrs() -> None:
    allow = AllowList(" 127.0.0.1 , Hooks.Internal., 10.1.0.0/16,[fd00::1],")
    guard = Guard(allow)
    assert guard.check_url("http://127.0.0.1:9000/x") == "127.0.0.1"
    guard.check_url("http://10.1.2.3/")
    guard.check_url("http://[fd00::1]/")
    with pytest.raises(RefusedUrl):
        guard.check_url("http://10.2.0.1/")
    assert allow.name("hooks.internal") and allow.name("HOOKS.INTERNAL.")
    assert not allow.name("other.internal")


async def test_registration_resolves_names() -> None:
    with pytest.raises(RefusedUrl, match="loopback"):
        await Guard(AllowList()).check_registration("http://localhost:8080/hook")
    await Guard(AllowList("localhost")).check_registration("http://localhost:8080/hook")
    await Guard(AllowList("127.0.0.0/8,::1")).check_registration("http://localhost:8080/hook")
    with pytest.raises(RefusedUrl, match="does not resolve"):
        await Guard(AllowList()).check_registration("http://no-such-host.invalid/hook")


async def test_resolver_keeps_only_allowed_addresses() -> None:
    with pytest.raises(RefusedUrl):
        await Guard(AllowList()).resolver().resolve("localhost", 80)
    found = await Guard(AllowList("localhost")).resolver().resolve("localhost", 80)
    assert found and all(ipaddress.ip_address(r["host"]).is_loopback for r in found)

"""SSRF guard: URL checks and resolved-address checks, with no DNS at all."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.messenger.delivery.urlguard import (
    AddressClass,
    UnsafeDestination,
    check_address,
    check_resolved,
    check_url,
    classify_address,
)

ipv4s = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://example.com/hook", "https://example.com/hook"),
        ("https://example.com", "https://example.com/"),
        ("HTTPS://Example.COM./x", "https://example.com/x"),
        ("http://example.com:8080/a?b=c#fragment", "http://example.com:8080/a?b=c"),
        ("https://example.com:443/", "https://example.com/"),
        ("http://8.8.8.8/", "http://8.8.8.8/"),
        ("http://[2606:4700::1111]:8443/x", "http://[2606:4700::1111]:8443/x"),
        ("http://[::ffff:8.8.8.8]/", "http://[::ffff:808:808]/"),
        ("http://bücher.de/", "http://xn--bcher-kva.de/"),
        ("https://hooks_1.example.com/", "https://hooks_1.example.com/"),
    ],
)
def test_public_destinations_pass_and_are_normalized(url: str, normalized: str) -> None:
    assert check_url(url, allow_private=False).url == normalized


def test_parsed_target_has_what_the_io_layer_needs() -> None:
    target = check_url("https://Example.com:8443/in?x=1", allow_private=False)
    assert (target.scheme, target.host, target.port, target.path, target.ip) == (
        "https",
        "example.com",
        8443,
        "/in?x=1",
        None,
    )
    assert target.host_header == "example.com:8443"
    literal = check_url("http://[2606:4700::1111]/", allow_private=False)
    assert literal.ip == ipaddress.IPv6Address("2606:4700::1111")
    assert literal.host_header == "[2606:4700::1111]"


@pytest.mark.parametrize(
    ("url", "reason", "words"),
    [
        ("ftp://example.com/", "scheme", "http or https"),
        ("file:///etc/passwd", "scheme", "http or https"),
        ("javascript:alert(1)", "scheme", "http or https"),
        ("gopher://example.com/", "scheme", "http or https"),
        ("http://user:pw@example.com/", "userinfo", "credentials"),
        ("http://user@example.com/", "userinfo", "credentials"),
        ("http://example.com@127.0.0.1/", "userinfo", "credentials"),
        ("http://127.0.0.1/", "loopback", "127.0.0.1 is loopback"),
        ("http://127.255.0.9:8000/", "loopback", "loopback"),
        ("http://[::1]/", "loopback", "loopback"),
        ("http://localhost/", "local_name", "local-only"),
        ("http://LOCALHOST./", "local_name", "local-only"),
        ("http://api.localhost/", "local_name", "local-only"),
        ("http://printer.local/", "local_name", "local-only"),
        ("http://db.internal/", "local_name", "local-only"),
        ("http://redis:6379/", "local_name", "single-label"),
        ("http://10.1.2.3/", "private", "RFC 1918"),
        ("http://172.16.0.1/", "private", "RFC 1918"),
        ("http://172.31.255.255/", "private", "RFC 1918"),
        ("http://192.168.1.1/", "private", "RFC 1918"),
        ("http://[fc00::1]/", "private", "unique local"),
        ("http://[fd12:3456::1]/", "private", "unique local"),
        ("http://169.254.1.1/", "link_local", "link-local"),
        ("http://[fe80::1]/", "link_local", "link-local"),
        ("http://169.254.169.254/latest/meta-data/", "metadata", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata", "metadata"),
        ("http://100.100.100.200/", "metadata", "metadata"),
        ("http://0.0.0.0/", "unspecified", "unspecified"),
        ("http://[::]/", "unspecified", "unspecified"),
        ("http://224.0.0.251/", "multicast", "multicast"),
        ("http://[ff02::1]/", "multicast", "multicast"),
        ("http://240.0.0.1/", "reserved", "reserved"),
        ("http://255.255.255.255/", "reserved", "broadcast"),
        ("http://192.0.2.10/", "reserved", "documentation"),
        ("http://[2001:db8::1]/", "reserved", "documentation"),
        ("http://100.64.0.1/", "carrier_grade_nat", "carrier-grade NAT"),
        ("http://100.127.255.254/", "carrier_grade_nat", "carrier-grade NAT"),
        ("http://[::ffff:127.0.0.1]/", "loopback", "IPv4-mapped"),
        ("http://[::ffff:169.254.169.254]/", "metadata", "IPv4-mapped"),
        ("http://[::ffff:10.0.0.1]/", "private", "IPv4-mapped"),
        ("http://[64:ff9b::10.0.0.1]/", "private", "NAT64"),
        ("http://[2002:c0a8:101::]/", "private", "6to4"),
        ("http://[::127.0.0.1]/", "reserved", "global unicast"),
        ("http://127.1/", "loopback", "127.0.0.1"),
        ("http://0x7f.0.0.1/", "loopback", "127.0.0.1"),
        ("http://0x7f000001/", "loopback", "127.0.0.1"),
        ("http://2130706433/", "loopback", "127.0.0.1"),
        ("http://017700000001/", "loopback", "127.0.0.1"),
        ("http://0177.0.0.1/", "loopback", "127.0.0.1"),
        ("http://0/", "unspecified", "0.0.0.0"),
        ("http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/", "loopback", "127.0.0.1"),
        ("http://08.0.0.1/", "invalid_host", "malformed IPv4"),
        ("http://1.2.3.4.5/", "invalid_host", "malformed IPv4"),
        ("http://256.0.0.1/", "invalid_host", "malformed IPv4"),
        ("http://example.123/", "invalid_host", "malformed IPv4"),
        ("http://a..b/", "invalid_host", "not a valid host"),
        ("http://-a.example.com/", "invalid_host", "not a valid host"),
        ("http://[fe80::1%25eth0]/", "invalid_host", "scoped"),
        ("http://[::1/", "invalid_url", "cannot be parsed"),
        ("http:///path", "invalid_host", "no host"),
        ("http://example.com:0/", "invalid_url", "port 0"),
        ("http://example.com:70000/", "invalid_url", "cannot be parsed"),
        ("http://example.com\\@127.0.0.1/", "invalid_url", "backslashes"),
        ("http://example.com/\r\nHost: evil", "invalid_url", "control characters"),
        ("http://exa mple.com/", "invalid_url", "whitespace"),
        ("https://example.com/" + "a" * 2100, "too_long", "longer than"),
    ],
)
def test_unsafe_destinations_are_refused_with_a_reason(url: str, reason: str, words: str) -> None:
    with pytest.raises(UnsafeDestination, match=words) as caught:
        check_url(url, allow_private=False)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost:8000/hook",
        "http://receiver:8080/hook",
        "http://10.0.0.5/",
        "http://[::1]:9000/",
        "http://[fe80::1]/",
        "http://100.64.0.1/",
    ],
)
def test_allow_private_opens_local_destinations_for_development(url: str) -> None:
    assert check_url(url, allow_private=True).url.startswith("http://")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
        "http://[::ffff:169.254.169.254]/",
        "http://169.254.170.2/v2/credentials",
        "ftp://127.0.0.1/",
        "http://user:pw@127.0.0.1/",
    ],
)
def test_allow_private_still_refuses_metadata_schemes_and_userinfo(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        check_url(url, allow_private=True)


def test_unsafe_destination_is_a_value_error_for_pydantic_validators() -> None:
    assert issubclass(UnsafeDestination, ValueError)


# --- resolved addresses ---------------------------------------------------------------------


def test_resolved_public_addresses_pass_deduplicated_in_order() -> None:
    assert check_resolved(
        ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.14"],
        allow_private=False,
    ) == (
        ipaddress.IPv4Address("93.184.215.14"),
        ipaddress.IPv6Address("2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
    )


def test_one_private_record_refuses_the_whole_answer() -> None:
    # A rebinding name answering with a public and a private address.
    with pytest.raises(UnsafeDestination, match=r"10\.0\.0\.1"):
        check_resolved(["93.184.215.14", "10.0.0.1"], allow_private=False)


def test_no_addresses_is_refused() -> None:
    with pytest.raises(UnsafeDestination, match="no addresses") as caught:
        check_resolved([], allow_private=True)
    assert caught.value.reason == "unresolved"


def test_garbage_from_the_resolver_is_refused() -> None:
    with pytest.raises(UnsafeDestination, match="not an IP address"):
        check_resolved(["not-an-ip"], allow_private=True)


def test_scoped_link_local_answers_follow_allow_private() -> None:
    with pytest.raises(UnsafeDestination, match="link-local"):
        check_resolved(["fe80::1%eth0"], allow_private=False)
    (address,) = check_resolved(["fe80::1%eth0"], allow_private=True)
    assert isinstance(address, ipaddress.IPv6Address)
    assert address.scope_id == "eth0"


def test_resolved_metadata_is_refused_even_when_private_is_allowed() -> None:
    with pytest.raises(UnsafeDestination, match="metadata"):
        check_resolved(["169.254.169.254"], allow_private=True)


# --- properties -----------------------------------------------------------------------------

_PRIVATE_V4 = [
    ipaddress.IPv4Network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16")
]


@given(st.sampled_from(_PRIVATE_V4), st.integers(min_value=0, max_value=2**24 - 1))
def test_every_address_in_private_ranges_is_refused(
    network: ipaddress.IPv4Network, offset: int
) -> None:
    address = network[offset % network.num_addresses]
    with pytest.raises(UnsafeDestination):
        check_address(address, allow_private=False)
    with pytest.raises(UnsafeDestination):
        check_url(f"http://{address}/", allow_private=False)


@given(ipv4s)
def test_ipv4_mapped_ipv6_is_judged_like_the_ipv4_address(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    plain, wrapped = classify_address(address), classify_address(mapped)
    assert (plain is None) == (wrapped is None)
    if plain is not None and wrapped is not None:
        assert plain[0] == wrapped[0]


@given(ipv4s)
def test_legacy_ipv4_spellings_resolve_to_the_same_address(
    address: ipaddress.IPv4Address,
) -> None:
    value, octets = int(address), str(address).split(".")
    spellings = [
        str(value),
        hex(value),
        ".".join("0" + oct(int(o))[2:] for o in octets),
        f"{octets[0]}.{octets[1]}.{int(octets[2]) * 256 + int(octets[3])}",
        f"{octets[0]}.{value & 0xFFFFFF}",
    ]
    for spelling in spellings:
        assert check_url(f"http://{spelling}/", allow_private=True).ip == address


@given(ipv4s)
def test_allow_private_refuses_only_metadata(address: ipaddress.IPv4Address) -> None:
    found = classify_address(address)
    if found is not None and found[0] is AddressClass.METADATA:
        with pytest.raises(UnsafeDestination):
            check_address(address, allow_private=True)
    else:
        assert check_address(address, allow_private=True) == address


@given(ipv4s)
def test_public_means_not_classified(address: ipaddress.IPv4Address) -> None:
    found = classify_address(address)
    if found is None:
        assert check_address(address, allow_private=False) == address
        assert not address.is_private and not address.is_loopback and not address.is_multicast
    else:
        with pytest.raises(UnsafeDestination):
            check_address(address, allow_private=False)

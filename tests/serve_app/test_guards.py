"""The front door's rules alone: which ``Host`` and ``Origin`` values pass, and body caps."""

from __future__ import annotations

import pytest

from ember.errors import TooManyStreams
from ember.serve_app.guards import BodyLimits, HostRules, split_host
from ember.serve_app.streams import StreamSlots


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("localhost", ("localhost", None)),
        ("LocalHost.:8000", ("localhost", 8000)),
        ("[::1]:8000", ("::1", 8000)),
        ("[0:0:0:0:0:0:0:1]", ("::1", None)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("::1", None),
        ("[::1", None),
        ("[nope]:80", None),
        ("a b", None),
        ("host:0", None),
        ("host:65536", None),
        ("host:", None),
        ("host:8x", None),
        ("host:\u00b2", None),
        ("", None),
        ("evil.example@127.0.0.1", None),
    ],
)
def test_split_host(value: str, parts: tuple[str, int | None] | None) -> None:
    assert split_host(value) == parts


def test_loopback_names_the_bound_address_and_configured_names_pass() -> None:
    rules = HostRules("127.0.0.1", 8000, ["ember.internal", "proxy.example:8443"])
    for host in [
        "localhost",
        "localhost:8000",
        "127.0.0.1:9999",
        "[::1]:8000",
        "ember.internal",
        "ember.internal:443",
        "proxy.example:8443",
    ]:
        assert rules.host_allowed(host), host
    for host in [
        None,
        "attacker.example",
        "proxy.example",
        "proxy.example:80",
        "10.0.0.5",
        "127.0.0.2",
    ]:
        assert not rules.host_allowed(host), host


def test_a_named_bind_host_and_a_wildcard() -> None:
    named = HostRules("ember.lan", 8100)
    assert named.host_allowed("ember.lan:8100") and named.host_allowed("ember.lan")
    assert not named.host_allowed("10.0.0.5:8100")
    wildcard = HostRules("0.0.0.0", 8000)
    assert wildcard.host_allowed("10.0.0.5:8000") and wildcard.host_allowed("[fe80::1]:8000")
    assert not wildcard.host_allowed("0.0.0.0.attacker.example")
    assert not wildcard.host_allowed("ember-serve-svc:8000")
    with pytest.raises(ValueError, match="not a host name"):
        HostRules("127.0.0.1", 8000, ["bad host"])


def test_origins_are_same_origin_or_configured() -> None:
    rules = HostRules(
        "127.0.0.1", 8000, allowed_origins=["https://app.example", "http://x.example:3000"]
    )
    assert rules.origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert rules.origin_allowed("http://localhost", "localhost")
    assert rules.origin_allowed("https://ember.example", "ember.example")
    assert rules.origin_allowed("https://app.example:443", "127.0.0.1:8000")
    assert rules.origin_allowed("http://x.example:3000", "127.0.0.1:8000")
    for origin in [
        "http://127.0.0.1:3000",
        "http://localhost:8000",
        "http://x.example",
        "null",
        "file://",
        "http://127.0.0.1:8000/path",
    ]:
        assert not rules.origin_allowed(origin, "127.0.0.1:8000"), origin
    assert rules.cross_origins == ["http://x.example:3000", "https://app.example"]


def test_the_upload_route_has_its_own_cap() -> None:
    limits = BodyLimits(body_bytes=10, upload_bytes=100)
    assert limits.cap("POST", "/collections/kb/documents") == 100
    assert limits.cap("POST", "/collections/kb/search") == 10
    assert limits.cap("POST", "/collections/kb/documents/x") == 10
    assert limits.cap("GET", "/collections/kb/documents") == 10


def test_stream_slots_count_per_principal() -> None:
    slots = StreamSlots(2)
    first, second = slots.take("a"), slots.take("a")
    other = slots.take("b")
    with pytest.raises(TooManyStreams) as over:
        slots.take("a")
    assert over.value.status == 429 and over.value.extra["limit"] == 2
    first.release()
    first.release()
    assert slots.open("a") == 1
    slots.take("a")
    second.release()
    other.release()
    assert slots.open("b") == 0
    unlimited = StreamSlots(None)
    assert all(unlimited.take("a") for _ in range(100))

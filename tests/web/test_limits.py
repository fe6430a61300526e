"""The gate's pure parts: attempt counting, coalesced refusals, who the client is,
which Host names this machine answers to, where a sign-in may send the browser."""

from __future__ import annotations

import pytest

from watchdog.web.clients import ClientResolver, HostAllowlist, client_key, host_name
from watchdog.web.limits import AttemptLimiter, RefusalJournal
from watchdog.web.signin import safe_next, signin_page


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_counts_on_arrival_and_forgives_as_the_window_moves():
    clock = Clock()
    limiter = AttemptLimiter(3, 60, clock)
    for _ in range(3):
        assert limiter.reserve("a") == 0
        clock.now += 10
    assert limiter.reserve("a") == pytest.approx(30)  # the 4th waits for the 1st to age
    assert limiter.reserve("b") == 0  # another client is not held up
    assert limiter.blocked_for("a") == pytest.approx(30)
    clock.now += 30.1
    assert limiter.reserve("a") == 0  # one slot back, not the whole budget
    assert limiter.reserve("a") > 0


def test_a_success_gives_the_clients_slots_back():
    limiter = AttemptLimiter(2, 60, Clock())
    limiter.reserve("a"), limiter.reserve("a")
    limiter.clear("a")
    assert limiter.reserve("a") == 0 and limiter.used("a") == 1


def test_refusals_are_coalesced_per_client_per_window():
    written: list[dict] = []
    journal = RefusalJournal(lambda event, **f: written.append({"event": event, **f}), 60, 2)
    for _ in range(500):
        journal.note("10.0.0.1", "wrong password", user="admin")
    for i in range(300):
        journal.note(f"10.0.1.{i}", "bad host", host="x")  # a crowd of clients
    assert len(written) == 2  # the first of each of two clients, at once
    journal.flush()
    assert written[2] == {
        "event": "auth_failed",
        "client": "10.0.0.1",
        "reason": "wrong password",
        "count": 499,
        "window_s": 60,
        "user": "admin",
    }
    assert written[-1]["client"] == "(other clients)" and written[-1]["count"] == 299
    assert len(written) == 4  # 800 refusals, four lines


def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    spoof = {"client": ("127.0.0.1", 5), "headers": [(b"x-forwarded-for", b"203.0.113.9")]}
    assert ClientResolver().address(spoof) == "127.0.0.1"
    trusted = ClientResolver(["127.0.0.1/32"])
    assert trusted.address(spoof) == "203.0.113.9"
    chain = {
        "client": ("127.0.0.1", 5),
        "headers": [(b"x-forwarded-for", b"1.1.1.1, 198.51.100.7, 127.0.0.1")],
    }
    assert trusted.address(chain) == "198.51.100.7"  # the rightmost hop not a proxy of ours
    garbage = {"client": ("127.0.0.1", 5), "headers": [(b"x-forwarded-for", b"<script>")]}
    assert trusted.address(garbage) == "127.0.0.1"
    other = {"client": ("198.51.100.1", 5), "headers": [(b"x-forwarded-for", b"1.2.3.4")]}
    assert trusted.address(other) == "198.51.100.1"
    assert trusted.from_proxy(spoof) and not trusted.from_proxy(other)
    assert not ClientResolver().from_proxy(spoof)


def test_ipv6_clients_count_per_slash_64():
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == "2001:db8::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("192.0.2.1") == "192.0.2.1"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:5005", True),
        ("[::1]:5005", True),
        ("203.0.113.50:5006", True),  # a cloud VM's public address (on no interface)
        ("localhost:5005", True),
        ("LOCALHOST.", True),
        ("app.localhost", True),
        ("sd.example.org", True),  # server.allowed_hosts
        ("rebind.attacker.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
        (None, False),
    ],
)
def test_host_allowlist(host, allowed):
    assert HostAllowlist(["sd.example.org"]).allows(host) is allowed


def test_host_allowlist_star_and_share():
    assert HostAllowlist(["*"]).allows("anything.example")
    assert HostAllowlist(share=True).allows("abc123.gradio.live")
    assert not HostAllowlist().allows("abc123.gradio.live")
    assert host_name("[2001:db8::1]:443") == "2001:db8::1"


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/view?filename=a.png", "/view?filename=a.png"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_sign_in_goes_on_only_to_a_path_here(target, safe):
    assert safe_next(target) == safe


def test_sign_in_page_escapes_what_it_shows():
    page = signin_page("/login", '/"><script>', "the page", "<b>x</b>", '"><img src=x>')
    assert "<script>" not in page and "<img" not in page and "<b>x" not in page

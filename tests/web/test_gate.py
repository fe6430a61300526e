"""The gate under attack: each finding of issue 12, tried again, refused, and the real
history still there afterwards."""

from __future__ import annotations

import json
import stat
import threading
import time

import pytest
import requests
from conftest import PASSWORD, USER, demo, events, running, set_password
from gradio_client import Client

from watchdog.settings import load_settings

AUTH = (USER, PASSWORD)


@pytest.fixture
def settings_path(write_settings):
    return write_settings(frameworks={"a": demo(), "b": demo()}, default="a")


@pytest.fixture
def guarded(serve, settings_path):
    web = serve(load_settings(settings_path), password=True, max_failures=5, lockout_s=60)
    web.sup.wait_for(running, timeout=15)
    return web


def history_intact(web) -> None:
    """The framework's own events are still in the journal, and nothing moved."""
    kinds = {e["event"] for e in events(web.sup)}
    assert {"spawn", "ready"} <= kinds
    assert web.sup.status().framework == "a" and running(web.sup.status())


def failed_lines(web) -> list[dict]:
    web.auth.refusals.flush()
    time.sleep(0.5)  # the relay writes on a thread of its own
    return events(web.sup, "auth_failed")


def at_once(n: int, fn) -> list:
    out: list = []
    lock = threading.Lock()

    def run(i: int) -> None:
        result = fn(i)
        with lock:
            out.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_forty_wrong_and_the_right_one_at_once_check_at_most_five(guarded):
    url = f"{guarded.url}info"
    wrong: list[int] = []
    threads = [
        threading.Thread(
            target=lambda i=i: wrong.append(
                requests.get(url, auth=(USER, f"guess-{i}"), timeout=60).status_code
            )
        )
        for i in range(40)
    ]
    for t in threads:
        t.start()
    time.sleep(0.2)  # the guesses are in flight
    right = requests.get(url, auth=AUTH, timeout=60)
    for t in threads:
        t.join(60)
    assert wrong.count(401) <= 5 and wrong.count(429) >= 35
    assert right.status_code == 429, "counted on arrival: the right one came too late"
    assert int(right.headers["retry-after"]) > 50
    history_intact(guarded)


def test_three_hundred_guesses_in_a_row_check_five(guarded):
    url = f"{guarded.url}info"
    session = requests.Session()
    t0 = time.monotonic()
    codes = [session.get(url, auth=(USER, f"g{i}"), timeout=30).status_code for i in range(300)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    assert time.monotonic() - t0 < 60, "refusals past the limit cost no hash and no wait"
    lines = failed_lines(guarded)
    assert len(lines) <= 4 and sum(e.get("count", 1) for e in lines) == 300


def test_forwarded_for_from_a_stranger_is_not_believed(guarded):
    url = f"{guarded.url}info"
    for i in range(5):
        spoof = {"X-Forwarded-For": f"10.9.9.{i}"}
        assert requests.get(url, auth=(USER, "x"), headers=spoof, timeout=30).status_code == 401
    owner = {"X-Forwarded-For": "198.51.100.77"}
    r = requests.get(url, auth=AUTH, headers=owner, timeout=30)
    assert r.status_code == 429, "every guess counted against the socket's address"
    assert {e["client"] for e in failed_lines(guarded)} == {"127.0.0.1"}


def test_forwarded_for_from_a_trusted_proxy_names_the_client(serve, settings_path):
    web = serve(
        load_settings(settings_path),
        password=True,
        max_failures=5,
        lockout_s=60,
        config={"trusted_proxies": ("127.0.0.1",)},
    )
    url = f"{web.url}info"
    attacker = {"X-Forwarded-For": "203.0.113.1"}
    for _ in range(6):
        requests.get(url, auth=(USER, "x"), headers=attacker, timeout=30)
    assert requests.get(url, auth=AUTH, headers=attacker, timeout=30).status_code == 429
    owner = {"X-Forwarded-For": "203.0.113.2"}
    assert requests.get(url, auth=AUTH, headers=owner, timeout=30).status_code == 200


def test_a_crowd_of_clients_gets_no_more_than_two_hashes_at_once(serve, settings_path):
    """1,000 strangers at once (through a trusted proxy, each its own address): the
    hashes queue at most 16 deep, the rest are told to come back, supervision goes on."""
    web = serve(
        load_settings(settings_path),
        password=True,
        config={"trusted_proxies": ("127.0.0.1",)},
    )
    web.sup.wait_for(running, timeout=15)
    url = f"{web.url}info"

    def guess(i: int) -> int:
        xff = {"X-Forwarded-For": f"10.{i // 250}.{i % 250}.1"}
        try:
            return requests.get(url, auth=(USER, "x"), headers=xff, timeout=60).status_code
        except requests.RequestException:
            return 0

    codes = at_once(300, guess)
    assert set(codes) <= {401, 503, 0} and 503 in codes
    assert requests.get(url, auth=AUTH, timeout=30).status_code == 200
    history_intact(web)


@pytest.mark.parametrize("password", [False, True])
def test_dns_rebinding_is_refused_with_and_without_a_password(serve, settings_path, password):
    rebind = {"Host": "rebind.attacker.example"}
    web = serve(load_settings(settings_path), password=password)
    web.sup.wait_for(running, timeout=15)
    auth = AUTH if password else None
    switch = requests.post(
        f"{web.url}api/v1/switch",
        json={"framework": "b"},
        headers=rebind,
        auth=auth,
        timeout=30,
    )
    assert switch.status_code == 421 and "allowed_hosts" in switch.text
    call = requests.post(
        f"{web.url}gradio_api/call/switch", json={"data": ["b"]}, headers=rebind, auth=auth
    )
    assert call.status_code == 421
    assert requests.get(f"{web.url}health", headers=rebind, timeout=10).status_code == 200
    assert not events(web.sup, "switch")
    assert requests.get(f"{web.url}info", auth=auth, timeout=10).status_code == 200


def test_a_flood_of_wrong_tokens_cannot_push_history_out(guarded):
    before = (guarded.sup.settings.logs_dir / "events.jsonl").stat().st_size
    long_path = "/info/" + "A" * 15_000

    def flood(i: int) -> int:
        session = requests.Session()
        codes = 0
        for _ in range(150):
            r = session.get(
                guarded.url.rstrip("/") + long_path,
                headers={"Authorization": "Bearer wrong-token"},
                timeout=30,
            )
            codes += r.status_code in (401, 429)
        return codes

    assert sum(at_once(20, flood)) == 3000
    lines = failed_lines(guarded)
    assert len(lines) <= 4
    assert all(len(e.get("path", "")) <= 200 for e in lines)
    grew = (guarded.sup.settings.logs_dir / "events.jsonl").stat().st_size - before
    assert grew < 5_000, f"3,000 refusals wrote {grew} bytes"
    history_intact(guarded)


def test_a_password_typed_as_the_user_name_is_never_journaled(guarded):
    secret = "MyRealPassw0rd!"
    assert requests.get(f"{guarded.url}info", auth=(secret, "x"), timeout=30).status_code == 401
    form = {"username": secret, "password": "y", "next": "/"}
    assert requests.post(f"{guarded.url}login", data=form, timeout=30).status_code == 401
    logs = guarded.sup.settings.logs_dir
    journal = (logs / "events.jsonl").read_text()
    assert secret not in journal
    assert any(e.get("user") == "(another name)" for e in failed_lines(guarded))
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    for path in [logs / "events.jsonl", *(logs / "runs").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((logs / "runs").stat().st_mode) == 0o700


def test_set_password_takes_effect_at_once_and_ends_older_sessions(guarded, settings_path):
    page = requests.Session()
    assert page.post(f"{guarded.url}login", data={"username": USER, "password": PASSWORD}).ok
    assert page.get(f"{guarded.url}info", timeout=10).status_code == 200
    set_password(settings_path, USER, "a new password 2")
    assert requests.get(f"{guarded.url}info", auth=AUTH, timeout=30).status_code == 401
    assert page.get(f"{guarded.url}info", timeout=10).status_code == 401, "old session ended"
    new = (USER, "a new password 2")
    assert requests.get(f"{guarded.url}info", auth=new, timeout=30).status_code == 200
    client = Client(guarded.url, auth=new, verbose=False)
    assert client.predict(api_name="/status")["state"] == "RUNNING"


def test_sign_out_ends_the_session_on_the_server(guarded):
    signed_in = requests.Session()
    signed_in.post(f"{guarded.url}login", data={"username": USER, "password": PASSWORD})
    copy = requests.Session()
    copy.cookies.update(signed_in.cookies)  # e.g. taken from a shared computer
    assert copy.get(f"{guarded.url}info", timeout=10).status_code == 200
    out = signed_in.get(f"{guarded.url}logout", allow_redirects=False, timeout=10)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert copy.get(f"{guarded.url}info", timeout=10).status_code == 401
    assert json.dumps(events(guarded.sup)).count("auth_failed") == 0  # no failure: a sign-out

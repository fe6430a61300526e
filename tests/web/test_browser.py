"""A real browser (Debian's chromium, driven by Playwright) uses the control page."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from conftest import PASSWORD, USER, demo, invokeai_db, invokeai_demo, invokeai_enqueue, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The probe flags of this workplace: no background traffic, nothing leaves the machine.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing: .ci/run installs it with apt")
    pytest.skip("chromium not installed (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def open_page(browser, url: str, **context_args):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **context_args)
    page = context.new_page()
    stray: list[str] = []

    def only_local(route):
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
            route.continue_()
        else:
            stray.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(url)
    return page, stray


def test_switch_from_the_page(browser, serve, make_settings, tmp_path):
    web = serve(make_settings(frameworks={"a": demo(), "b": demo()}, default="a"))
    web.sup.wait_for(running, timeout=10)
    page, stray = open_page(browser, web.url)
    card = page.locator("#status-card")
    state = card.locator(".sdw-state")
    sync_api.expect(state).to_have_text("RUNNING", timeout=15_000)
    sync_api.expect(card.locator(".sdw-framework")).to_have_text("a")

    page.locator("#framework-choice input").click()
    page.get_by_role("option", name="b").click()
    page.locator("#switch").click()

    sync_api.expect(page.locator("#action-message")).to_contain_text("Switching to b")
    sync_api.expect(card.locator(".sdw-framework")).to_have_text("b", timeout=20_000)
    status = web.sup.wait_for(lambda s: running(s) and s.framework == "b", timeout=20)
    sync_api.expect(state).to_have_text("RUNNING", timeout=20_000)
    sync_api.expect(card.locator(".sdw-pid")).to_have_text(str(status.pid), timeout=10_000)
    b_line = f"Running on local URL:  {status.url}"
    sync_api.expect(page.locator("#log-tail textarea")).to_have_value(
        re.compile(re.escape(b_line)), timeout=10_000
    )
    page.screenshot(path=str(tmp_path / "switched.png"), full_page=True)
    page.get_by_role("tab", name="GPU").click()  # this machine has none, and says so
    sync_api.expect(page.locator("#gpu-none")).to_have_text("No NVIDIA GPU detected")
    assert (tmp_path / "switched.png").stat().st_size > 10_000
    assert stray == [], f"the page tried to reach beyond this machine: {stray}"


def test_sign_in_on_the_form_open_the_door_use_the_framework_and_sign_out(
    browser, serve, make_settings, tmp_path
):
    web = serve(make_settings(frameworks={"demo": demo()}), password=True, door=True)
    web.sup.wait_for(running, timeout=10)
    page, stray = open_page(browser, web.url)
    form = page.locator("#sdw-signin")
    sync_api.expect(form).to_be_visible()  # a form of ours, not the browser's pop-up
    assert page.locator("#status-card").count() == 0
    page.fill("#username", USER)
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    sync_api.expect(page.locator(".sdw-error")).to_contain_text("Wrong user name or password")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    sync_api.expect(page.locator("#status-card")).to_contain_text("RUNNING", timeout=15_000)
    sync_api.expect(page.locator("#account")).to_contain_text(f"signed in as {USER}")
    link = page.locator("#status-card a[target=_blank]")
    assert link.get_attribute("href").rstrip("/") == web.door.rstrip("/")

    # The door, with the same sign-in: the framework's own page, its API and WebSocket.
    framework = page.context.new_page()
    framework.route("**/*", lambda route: route.continue_())
    framework.goto(web.door)
    sync_api.expect(framework.locator("h1")).to_have_text("sd-watchdog demo framework")
    sync_api.expect(framework.locator("#api")).to_have_text("api: ok", timeout=10_000)
    sync_api.expect(framework.locator("#ws")).to_have_text(
        "ws: hello through the door", timeout=10_000
    )
    framework.screenshot(path=str(tmp_path / "door.png"))

    page.click("#sign-out")
    sync_api.expect(page.locator("#sdw-signin")).to_be_visible(timeout=10_000)
    framework.goto(web.door)  # the session ended on the server: the door is shut too
    sync_api.expect(framework.locator("#sdw-signin")).to_be_visible()
    assert stray == [], f"the page tried to reach beyond this machine: {stray}"


SHOTS = os.environ.get("SDW_SCREENSHOTS")  # a folder (docs/): keep the pictures


def _shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    assert (tmp_path / name).stat().st_size > 5_000
    if SHOTS:
        shutil.copy(tmp_path / name, os.path.join(SHOTS, name))


def test_an_action_says_how_it_ended_then_clears_and_a_double_click_restarts_once(
    browser, serve, make_settings, tmp_path
):
    settings = make_settings(
        frameworks={"a": demo(), "b": demo(), "broken": demo(None, "--crash-after", "0")},
        default="a",
    )
    web = serve(settings)
    web.sup.wait_for(running, timeout=10)
    page, stray = open_page(browser, web.url)
    said = page.locator("#action-message")
    sync_api.expect(page.locator("#status-card .sdw-state")).to_have_text("RUNNING", timeout=15_000)

    page.locator("#framework-choice input").click()
    page.get_by_role("option", name="b", exact=True).click()
    page.locator("#switch").click()
    sync_api.expect(said).to_contain_text("✓ b is running", timeout=20_000)
    sync_api.expect(said).to_have_text("", timeout=20_000)  # and then it clears

    page.locator("#switch").click()  # b again: nothing happens, and it says so
    sync_api.expect(said).to_contain_text("Nothing to do: b is already running")

    restarts = len(web.sup.events.tail(1000, event="restart"))
    page.locator("#restart").dblclick()
    sync_api.expect(said).to_contain_text("✓ b is running again", timeout=20_000)
    page.wait_for_timeout(1000)
    assert len(web.sup.events.tail(1000, event="restart")) == restarts + 1, "one restart"
    assert len(web.sup.events.tail(1000, event="spawn", framework="b")) == 2

    page.locator("#framework-choice input").click()
    page.get_by_role("option", name="broken").click()
    page.locator("#switch").click()
    sync_api.expect(said).to_contain_text("✗ broken failed", timeout=30_000)
    _shot(page, tmp_path, "page-fatal.png")

    # Events: a row per run, coloured by its worst event, filtered to problems.
    page.get_by_role("tab", name="Events").click()
    events = page.locator("#events")
    sync_api.expect(events.locator("tr.ev-bad").first).to_be_visible(timeout=10_000)
    page.locator("#events-kind input").click()
    page.get_by_role("option", name="problems", exact=True).click()
    sync_api.expect(events.locator("tr.ev-ok")).to_have_count(0, timeout=10_000)
    first = events.locator("tr.ev-bad").first
    first.locator("summary").click()
    sync_api.expect(first.locator("dl").first).to_contain_text("reason")
    _shot(page, tmp_path, "page-events.png")

    # GPU: this machine has none, so no empty plots, a sentence instead.
    page.get_by_role("tab", name="GPU").click()
    sync_api.expect(page.locator("#no-gpu")).to_contain_text("No NVIDIA GPU here", timeout=15_000)
    sync_api.expect(page.locator("#plot-gpu_util_pct")).to_be_hidden()
    sync_api.expect(page.locator("#plot-framework_rss_mb")).to_be_visible()
    _shot(page, tmp_path, "page-gpu.png")
    assert stray == [], f"the page tried to reach beyond this machine: {stray}"


def test_the_page_fits_a_phone_400_px_wide(browser, serve, make_settings, tmp_path):
    web = serve(make_settings())
    web.sup.wait_for(running, timeout=10)
    page, _ = open_page(browser, web.url)
    page.set_viewport_size({"width": 400, "height": 800})
    sync_api.expect(page.locator("#status-card .sdw-state")).to_have_text("RUNNING", timeout=15_000)
    for tab in ("Log", "Events", "GPU"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(500)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"{tab}: the page is {width} px wide at 400"
    page.get_by_role("tab", name="Log").click()
    for link in page.locator("#log-download a").all():  # not squeezed or cut off
        box = link.bounding_box()
        assert box and box["width"] > 20 and box["x"] + box["width"] <= 400, box
    _shot(page, tmp_path, "page-400px.png")


def test_the_idle_countdown_and_keep_awake(browser, serve, make_settings, tmp_path):
    ran = tmp_path / "ran.txt"
    idle = {"after_min": 0.05, "action": "command", "command": f"touch '{ran}'", "grace_min": 1}
    web = serve(make_settings(idle=idle))
    web.sup.wait_for(running, timeout=10)
    page, stray = open_page(browser, web.url)
    line = page.locator("#status-card .sdw-idle")
    sync_api.expect(line).to_contain_text(re.compile(r"idle for \d+ s; the idle command runs in"))
    sync_api.expect(line).to_contain_text("unless you keep it awake", timeout=15_000)
    _shot(page, tmp_path, "page-idle.png")
    page.locator("#keep-awake").click()
    sync_api.expect(page.locator("#action-message")).to_contain_text("Kept awake")
    sync_api.expect(line).not_to_contain_text("unless you keep it awake", timeout=10_000)
    [kept] = web.sup.events.tail(10, event="keep_awake")
    assert kept["requested_by"] == "ui" and kept["cancelled"] == "the idle command"
    assert not ran.exists() and stray == []


def test_two_slots_side_by_side_and_the_buttons_act_on_the_chosen_one(
    browser, serve, make_settings, tmp_path
):
    slots = {
        "gpu0": {"gpus": "0", "default_framework": "a"},
        "gpu1": {"gpus": "1", "default_framework": "b", "port_offset": 100},
    }
    web = serve(make_settings(frameworks={"a": demo(), "b": demo()}, slots=slots))
    sups = web.service.supervisors
    first = {slot: sups[slot].wait_for(running, timeout=15).pid for slot in slots}
    page, stray = open_page(browser, web.url)
    cards = page.locator("#status-card .sdw-card")
    sync_api.expect(cards).to_have_count(2, timeout=15_000)
    for slot, name in (("gpu0", "a"), ("gpu1", "b")):
        card = page.locator(f"#status-card .sdw-card[data-slot='{slot}']")
        sync_api.expect(card.locator(".sdw-state")).to_have_text("RUNNING", timeout=15_000)
        sync_api.expect(card.locator(".sdw-framework")).to_have_text(name)
    page.locator("#slot-choice").get_by_text("gpu1").click()
    sync_api.expect(page.locator("#status-card .sdw-chosen")).to_have_attribute(
        "data-slot", "gpu1", timeout=10_000
    )
    page.locator("#restart").click()
    sync_api.expect(page.locator("#action-message")).to_contain_text(
        "✓ b is running again", timeout=20_000
    )
    assert sups["gpu1"].status().pid != first["gpu1"]
    assert sups["gpu0"].status().pid == first["gpu0"], "the other slot was not touched"
    assert web.sup.events.tail(10, event="restart") == []  # gpu0's journal: no restart
    _shot(page, tmp_path, "page-slots.png")
    assert stray == []


def test_invokeais_queue_said_on_the_card_kept_by_a_forced_stop_cleared_when_asked(
    browser, serve, make_settings, tmp_path
):
    entry = invokeai_demo(tmp_path, 60)
    web = serve(make_settings(frameworks={"invoke": entry}))
    url = web.sup.wait_for(running, timeout=15).url
    invokeai_enqueue(url, 3)
    web.sup.wait_for(lambda s: s.busy, timeout=10)
    page, stray = open_page(browser, web.url)
    page.locator("#force input").check()
    page.locator("#stop").click()
    line = page.locator("#status-card .sdw-queue")
    sync_api.expect(line).to_contain_text("2 pending jobs resume at its next start", timeout=20_000)
    sync_api.expect(page.locator("#status-card .sdw-state")).to_have_text("STOPPED", timeout=20_000)
    _shot(page, tmp_path, "page-invokeai-queue.png")
    assert invokeai_db(tmp_path)[1:] == [{"item_id": 2, "status": "pending"},
                                              {"item_id": 3, "status": "pending"}]  # fmt: skip
    page.locator("#start").click()
    sync_api.expect(page.locator("#status-card .sdw-state")).to_have_text("RUNNING", timeout=20_000)
    web.sup.wait_for(lambda s: s.busy, timeout=10)  # it resumed them
    page.locator("#force input").uncheck()
    page.locator("#clear-queue input").check()
    page.locator("#stop").click()
    sync_api.expect(page.locator("#status-card .sdw-state")).to_have_text("STOPPED", timeout=20_000)
    [cleared] = web.sup.events.tail(10, event="queue_cleared")
    assert cleared["requested_by"] == "ui" and cleared["detail"].endswith("3 deleted")
    sync_api.expect(line).to_have_count(0)  # nothing left to resume: nothing said
    assert invokeai_db(tmp_path) == [] and stray == []

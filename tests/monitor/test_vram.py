"""VRAM-safe switching and the RAM-growth restart, with a pynvml-shaped fake GPU."""

from __future__ import annotations

import pytest
from conftest import demo, events, running, wait_event

from watchdog.core.states import State
from watchdog.monitor import gpu
from watchdog.runtime.service import Service


def two(make_settings, **watch):
    return make_settings(frameworks={"a": demo(), "b": demo()}, default="a", watch=watch)


def kinds(sup):
    return [(e["event"], e.get("framework")) for e in events(sup)]


def test_switch_waits_until_vram_is_released(fake_nvml, make_settings, supervise):
    fake_nvml.CONFIG["release_delay_s"] = 1.0  # the driver frees it a second after exit
    sup = supervise(two(make_settings), gpu=gpu.make_reader())
    sup.wait_for(running, timeout=10)
    sup.switch("b")
    sup.wait_for(lambda s: running(s) and s.framework == "b", timeout=20)
    order = kinds(sup)
    assert order.index(("stop", "a")) < order.index(("vram_released", "a"))
    assert order.index(("vram_released", "a")) < order.index(("spawn", "b"))
    released = events(sup, "vram_released")[-1]
    assert released["freed_mb"] == 4096 and released["waited_ms"] >= 800


@pytest.mark.parametrize("action", ["start", "fatal"])
def test_vram_never_released_times_out(fake_nvml, make_settings, supervise, action):
    fake_nvml.CONFIG["never_release"] = True
    sup = supervise(
        two(make_settings, vram_release_timeout_s=0.6, vram_timeout_action=action),
        gpu=gpu.make_reader(),
    )
    first = sup.wait_for(running, timeout=10)
    sup.switch("b")
    timeout = wait_event(sup, "vram_timeout", 10)[-1]
    assert timeout["held_pids"] == [first.pid] and timeout["held_mb"] == 4096
    assert timeout["action"] == action and timeout["waited_s"] >= 0.6
    if action == "start":
        sup.wait_for(lambda s: running(s) and s.framework == "b", timeout=10)
    else:
        status = sup.wait_for(lambda s: s.state is State.FATAL, timeout=10)
        assert "was not freed" in status.reason and ("spawn", "b") not in kinds(sup)


def test_without_a_gpu_the_vram_step_says_it_was_skipped(make_settings, supervise):
    sup = supervise(two(make_settings), gpu=gpu.make_reader())  # the real no-GPU path
    sup.wait_for(running, timeout=10)
    sup.switch("b")
    sup.wait_for(lambda s: running(s) and s.framework == "b", timeout=10)
    stop = [e for e in events(sup, "stop") if e["framework"] == "a"][-1]
    assert stop["vram"] == "skipped: No NVIDIA GPU detected"
    assert not events(sup, "vram_released") and not events(sup, "vram_timeout")


def test_growing_rss_past_max_rss_mb_restarts(make_settings):
    settings = make_settings(
        frameworks={"leaky": demo(None, "--grow-rss-mb-per-s", "100", max_rss_mb=80)},
        watch={"rss_limit_s": 0.5},
        metrics={"interval_s": 0.2},
    )
    service = Service(settings)
    try:
        service.start()
        sup = service.supervisor
        first = sup.wait_for(running, timeout=10)
        restart = wait_event(sup, "restart", 15)[-1]
        assert restart["reason"] == "rss_limit" and restart["pid"] == first.pid
        assert restart["rss_mb"] > 80 and restart["limit_mb"] == 80
        assert "above max_rss_mb=80" in restart["detail"]
        sup.wait_for(lambda s: running(s) and s.pid != first.pid, timeout=10)
    finally:
        service.stop()


def test_gpu_panel_marks_the_framework_and_shows_na(fake_nvml, make_settings, supervise):
    from watchdog.web.cards import gpu_panel

    fake_nvml.CONFIG["others"] = [{"pid": 1, "gpu": 0, "mb": 300}]
    sup = supervise(make_settings(frameworks={"demo": demo()}))
    status = sup.wait_for(running, timeout=10)
    html = gpu_panel(gpu.make_reader().read(sup.tree_pids()).to_dict())
    assert "NVIDIA H200" in html and "4908 / 143771 MiB" in html  # 512 base + 4096 + 300
    ours = html.split("sdw-ours")[1]
    assert f"<td>{status.pid}</td>" in ours and "<b>framework</b>" in ours
    assert "<td>n/a</td>" in html  # the board has no fan
    assert "Driver 550.54.15" in html

"""GET /metrics: Prometheus' format, behind the gate, moving with what happens."""

from __future__ import annotations

import os
import signal
import time

import requests
from conftest import demo, running, wait_event
from prometheus_client.parser import text_string_to_metric_families

from watchdog.monitor import gpu

REQUIRED = {
    "sdwatchdog_framework_up",
    "sdwatchdog_framework_state",
    "sdwatchdog_restarts",
    "sdwatchdog_crashes",
    "sdwatchdog_busy",
    "sdwatchdog_gpu_utilization_ratio",
    "sdwatchdog_gpu_memory_used_bytes",
    "sdwatchdog_framework_rss_bytes",
    "sdwatchdog_door_requests",
}


def scrape(web, **kw) -> dict[str, dict[tuple, float]]:
    r = requests.get(f"{web.url}metrics", timeout=10, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    assert {f.name for f in text_string_to_metric_families(r.text)} >= REQUIRED
    return out


def test_metrics_need_credentials_parse_and_move_with_a_crash(make_settings, serve, fake_nvml):
    web = serve(make_settings(), password=True, door=True, reader=gpu.make_reader())
    status = web.sup.wait_for(running, timeout=10)
    assert requests.get(f"{web.url}metrics", timeout=10).status_code == 401
    bearer = {"headers": {"Authorization": f"Bearer {web.token}"}}
    deadline = time.monotonic() + 10
    before = scrape(web, **bearer)
    while not before.get("sdwatchdog_framework_rss_bytes") and time.monotonic() < deadline:
        time.sleep(0.2)  # the sampler's first sample of the framework
        before = scrape(web, **bearer)
    assert before["sdwatchdog_framework_up"][(("framework", "demo"),)] == 1
    assert before["sdwatchdog_framework_state"][(("framework", "demo"), ("state", "RUNNING"))] == 1
    assert before["sdwatchdog_framework_state"][(("framework", "demo"), ("state", "FATAL"))] == 0
    assert before["sdwatchdog_gpu_utilization_ratio"][(("gpu", "0"),)] <= 1
    assert before["sdwatchdog_gpu_memory_used_bytes"][(("gpu", "0"),)] > 0
    assert next(iter(before["sdwatchdog_framework_rss_bytes"].values())) > 1e6
    assert "sdwatchdog_crashes_total" not in before

    requests.get(web.door, timeout=10, **bearer)
    os.kill(status.pid, signal.SIGKILL)
    wait_event(web.sup, "spawn", 10, count=2)
    web.sup.wait_for(running, timeout=10)
    after = scrape(web, **bearer)
    assert after["sdwatchdog_crashes_total"][(("cause", "SIGKILL"), ("framework", "demo"))] == 1
    assert after["sdwatchdog_restarts_total"][(("framework", "demo"),)] == 1
    door = after["sdwatchdog_door_requests_total"][()]
    assert door >= before["sdwatchdog_door_requests_total"][()] + 1


def test_without_a_gpu_the_gpu_metrics_are_absent_not_zero(make_settings, serve):
    web = serve(make_settings(frameworks={"a": demo()}))
    web.sup.wait_for(running, timeout=10)
    got = scrape(web)
    assert "sdwatchdog_gpu_utilization_ratio" not in got
    assert got["sdwatchdog_busy"][()] == 0


def test_with_slots_every_series_names_its_slot(make_settings, serve, fake_nvml):
    slots = {
        "gpu0": {"gpus": "0", "default_framework": "a"},
        "gpu1": {"gpus": "1", "default_framework": "a", "port_offset": 100},
    }
    web = serve(make_settings(frameworks={"a": demo()}, slots=slots), password=True)
    sups = web.service.supervisors
    pid = {s: sups[s].wait_for(running, timeout=15).pid for s in slots}
    bearer = {"headers": {"Authorization": f"Bearer {web.token}"}}
    before = scrape(web, **bearer)
    for slot in slots:  # the same framework on two GPUs: two series, not one
        assert before["sdwatchdog_framework_up"][(("framework", "a"), ("slot", slot))] == 1
        assert before["sdwatchdog_busy"][(("slot", slot),)] == 0
    os.kill(pid["gpu1"], signal.SIGKILL)
    wait_event(sups["gpu1"], "spawn", 10, count=2)
    after = scrape(web, **bearer)
    crashes = after["sdwatchdog_crashes_total"]
    assert crashes == {(("cause", "SIGKILL"), ("framework", "a"), ("slot", "gpu1")): 1.0}
    assert after["sdwatchdog_restarts_total"] == {(("framework", "a"), ("slot", "gpu1")): 1.0}

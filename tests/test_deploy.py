"""deploy/: Prometheus config and alert rules that promtool accepts, a dashboard whose
every metric /metrics really has, and the container entrypoint that execs the watchdog."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import PASSWORD, ROOT, USER, free_port, pid_alive, wait_journal
from prometheus_client.parser import text_string_to_metric_families

from watchdog.monitor import gpu

DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (./test.sh fetches it from Debian)"
)


@needs_promtool
def test_promtool_accepts_the_config_the_rules_and_the_rules_own_tests(tmp_path):
    shutil.copytree(DEPLOY / "prometheus", tmp_path / "p")
    (tmp_path / "p" / "sd-watchdog.token").write_text("the token set-password printed\n")
    for args in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "sd-watchdog.rules.yml"],
        ["test", "rules", "sd-watchdog.rules.test.yml"],
    ):
        done = subprocess.run([PROMTOOL, *args], cwd=tmp_path / "p", capture_output=True)
        assert done.returncode == 0, (args, done.stdout.decode(), done.stderr.decode())


def _metric_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
    return names


def test_every_metric_the_dashboard_and_rules_use_is_in_metrics(make_settings, serve, fake_nvml):
    web = serve(make_settings(), reader=gpu.make_reader())
    deadline = time.monotonic() + 10
    while True:  # the sampler's first reading of the framework's RSS
        names = _metric_names(requests.get(f"{web.url}metrics", timeout=10).text)
        if "sdwatchdog_framework_rss_bytes" in names or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    names |= {"sdwatchdog_crashes_total", "sdwatchdog_restarts_total"}  # from the first crash
    dashboard = json.loads((DEPLOY / "grafana" / "sd-watchdog.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = (DEPLOY / "prometheus" / "sd-watchdog.rules.yml").read_text()
    used = set(re.findall(r"sdwatchdog_[a-z_]+", " ".join(exprs) + rules))
    assert len(dashboard["panels"]) >= 8 and used
    assert used <= names, f"not in /metrics: {used - names}"


def test_the_container_entrypoint_sets_the_login_and_execs_the_watchdog(tmp_path):
    settings = tmp_path / "volume" / "sd-watchdog" / "settings.json"
    port, app_port = free_port(), free_port()
    env = {**os.environ, "SDW_HOME": str(ROOT), "SDW_SETTINGS": str(settings),
           "SDW_USER": USER, "SDW_PASSWORD": PASSWORD, "SDW_PYTHON": sys.executable}  # fmt: skip
    output = tmp_path / "entrypoint.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [str(DEPLOY / "container" / "entrypoint.sh"), "--port", str(port), "--app-port",
             str(app_port), "--no-watch"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        try:
            wait_journal(settings.parent / "logs", "watchdog_start", timeout=30)
        except AssertionError:
            raise AssertionError(output.read_text(errors="replace")[-2000:]) from None
        assert settings.exists(), "the shipped settings were copied onto the volume"
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"app.py" in cmdline, "exec: the watchdog is the process, not a shell"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/info", timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "no page"
                time.sleep(0.2)
        assert r.status_code == 401, "public, so behind the login the entrypoint set"
        ok = requests.get(f"http://127.0.0.1:{port}/info", auth=(USER, PASSWORD), timeout=5)
        assert ok.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not pid_alive(proc.pid)

"""Real frameworks: shipped entries, "not installed", venv detection, port drift."""

from __future__ import annotations

import sys
import time

import pytest
from conftest import ROOT, demo, events, free_port, running, wait_event

from watchdog.core.errors import NotInstalled
from watchdog.frameworks.presets import PRESETS, resolve_framework
from watchdog.settings import FrameworkEntry, load_settings


def test_shipped_entries_say_not_installed_with_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty home: nothing is installed
    settings = load_settings(ROOT / "settings.json")
    expected = {
        "a1111": "stable-diffusion-webui",
        "forge": "stable-diffusion-webui-forge",
        "comfyui": "ComfyUI",
        "invokeai": "invokeai",
        "sdnext": "automatic",
        "fooocus": "Fooocus",
    }
    for name, folder in expected.items():
        missing = settings.framework(name).missing()
        assert missing.startswith(f"not installed: {tmp_path / folder} does not exist")
        assert f'"{name}": {{"cwd": ' in missing and "settings.local.json" in missing
    assert settings.framework("demo").missing() is None


def test_starting_a_missing_framework_says_so_and_changes_nothing(
    make_settings, supervise, tmp_path
):
    sup = supervise(
        make_settings(
            frameworks={
                "demo": demo(),
                "comfy": {"preset": "comfyui", "cwd": str(tmp_path / "ComfyUI")},
            }
        )
    )
    before = sup.wait_for(running, timeout=10)
    with pytest.raises(NotInstalled, match=r"comfy is not installed: .*ComfyUI does not exist"):
        sup.switch("comfy")
    assert sup.status().seq == before.seq and sup.status().pid == before.pid


def test_venv_of_the_framework_folder_is_used(tmp_path):
    (tmp_path / "ComfyUI" / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "Fooocus").mkdir()
    settings_file = tmp_path / "s.json"
    settings_file.write_text(
        '{"frameworks": {"c": {"preset": "comfyui", "cwd": "ComfyUI"},'
        ' "f": {"preset": "fooocus", "cwd": "Fooocus"}}, "default_framework": "c"}'
    )
    settings = load_settings(settings_file)
    assert settings.framework("c").command[0] == "venv/bin/python3"
    assert settings.framework("f").command[0] == "python3"
    assert "venv/bin/python3 does not exist" in settings.framework("c").missing()


def test_port_drift_follows_the_ready_line(make_settings, supervise):
    configured = free_port()
    # Like Gradio finding its port taken: it serves elsewhere and says so.
    sup = supervise(make_settings(frameworks={"drift": demo(configured, "--port", "0")}))
    status = sup.wait_for(running, timeout=10)
    assert status.url != f"http://127.0.0.1:{configured}"
    changed = wait_event(sup, "url_changed", 2)[-1]
    assert changed["configured"] == f"http://127.0.0.1:{configured}"
    assert changed["actual"] == status.url
    time.sleep(1.0)  # several liveness probes, all on the real port
    assert sup.status().healthy and not events(sup, "unhealthy")


def test_custom_preset_is_a_command_and_a_health_url(make_settings, supervise, tmp_path):
    from watchdog.frameworks.presets import DEMO_APP
    from watchdog.settings import SettingsError

    port = free_port()
    entry = {
        "preset": "custom",
        "command": [sys.executable, str(DEMO_APP), "--port", str(port)],
        "url": f"http://127.0.0.1:{port}",
        "health_path": "/internal/ping",
    }
    sup = supervise(make_settings(frameworks={"mine": entry}))
    status = sup.wait_for(running, timeout=10)
    assert status.url == f"http://127.0.0.1:{port}"
    assert wait_event(sup, "ready", 2)[-1]["via"] == "health URL"  # no ready pattern given
    with pytest.raises(SettingsError, match=r"frameworks\.x\.command: required"):
        make_settings(frameworks={"x": {"preset": "custom", "port": 1}})


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_binds_its_framework_to_loopback(preset, tmp_path):
    """The framework is reached from outside only through the door (shared/frameworks.md)."""
    spec = resolve_framework(preset, FrameworkEntry(preset=preset, port=7001), tmp_path)
    command = list(spec.command)
    if "--listen" in command:  # ComfyUI's flag takes the address
        assert command[command.index("--listen") + 1] == "127.0.0.1"
    assert "0.0.0.0" not in spec.command_line
    assert spec.url == "http://127.0.0.1:7001"
    if preset == "invokeai":  # no flag: its address comes from the environment
        assert spec.env == {"INVOKEAI_HOST": "127.0.0.1", "INVOKEAI_PORT": "7001"}


def test_a_users_own_command_and_env_stay_theirs(tmp_path):
    entry = FrameworkEntry(
        preset="invokeai", command="invokeai-web --root /x", env={"INVOKEAI_HOST": "0.0.0.0"}
    )
    spec = resolve_framework("invokeai", entry, tmp_path)
    assert spec.command == ("invokeai-web", "--root", "/x")
    assert spec.env == {"INVOKEAI_HOST": "0.0.0.0"}
    entry = FrameworkEntry(preset="invokeai", env={"INVOKEAI_PORT": "9999"})
    assert resolve_framework("invokeai", entry, tmp_path).env["INVOKEAI_PORT"] == "9999"

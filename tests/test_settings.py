"""Settings: what loads, what is refused, and that refusal names the place to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, run_app

from watchdog.settings import SettingsError, load_settings


def write(tmp_path: Path, data: object, name: str = "settings.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def test_shipped_settings_load_and_run_the_demo():
    settings = load_settings(ROOT / "settings.json")
    assert settings.default_framework == "demo"
    spec = settings.framework("demo")
    assert spec.command[1].endswith("watchdog/frameworks/demo_app.py")
    assert spec.url == "http://127.0.0.1:7860" and spec.health_path == "/internal/ping"
    assert settings.logs_dir == ROOT / "logs"


def test_built_in_defaults_need_no_file():
    settings = load_settings(None)
    assert settings.names == ["demo"] and settings.watch.startup_timeout_s == 900


def test_paths_resolve_against_the_settings_folder(tmp_path, monkeypatch):
    path = write(
        tmp_path,
        {
            "frameworks": {
                "rel": {"preset": "demo", "cwd": "webui"},
                "home": {"preset": "comfyui", "cwd": "~/ComfyUI"},
                "abs": {"preset": "demo", "cwd": "/opt/x"},
            },
            "default_framework": "rel",
            "logs": {"dir": "../shared-logs"},
        },
    )
    monkeypatch.chdir("/")  # the current directory must not matter
    settings = load_settings(path)
    assert settings.framework("rel").cwd == tmp_path / "webui"
    assert settings.framework("home").cwd == Path.home() / "ComfyUI"
    assert settings.framework("abs").cwd == Path("/opt/x")
    assert settings.logs_dir == tmp_path / "../shared-logs"


def test_preset_fields_can_be_overridden_including_watch_keys(tmp_path):
    path = write(
        tmp_path,
        {
            "default_framework": "c",
            "watch": {"startup_timeout_s": 100},
            "frameworks": {
                "c": {
                    "preset": "comfyui",
                    "port": 9999,
                    "command": "venv/bin/python main.py --port {port}",
                    "env": {"HF_TOKEN": "secret"},
                    "startup_timeout_s": 1800,
                    "stop_signal": "INT",
                }
            },
        },
    )
    settings = load_settings(path)
    spec = settings.framework("c")
    assert spec.command == ("venv/bin/python", "main.py", "--port", "9999")
    assert spec.url == "http://127.0.0.1:9999" and spec.health_path == "/system_stats"
    assert spec.stop_signal.name == "SIGINT"
    assert settings.watch_for("c").startup_timeout_s == 1800
    assert settings.watch.startup_timeout_s == 100
    assert "secret" not in repr(spec) and "secret" not in spec.command_line


def test_command_keeps_braces_that_are_not_placeholders(tmp_path):
    cmd = ["serve", "--port", "{port}", "--json", '{"a": 1}', "{other}"]
    path = write(
        tmp_path, {"frameworks": {"m": {"command": cmd, "port": 9000}}, "default_framework": "m"}
    )
    spec = load_settings(path).framework("m")
    assert spec.command == ("serve", "--port", "9000", "--json", '{"a": 1}', "{other}")


def test_local_override_merges_over_the_file(tmp_path):
    path = write(tmp_path, {"frameworks": {"demo": {"preset": "demo", "port": 7000}}})
    write(
        tmp_path,
        {"frameworks": {"demo": {"port": 7001}}, "watch": {"max_restarts": 9}},
        "settings.local.json",
    )
    settings = load_settings(path)
    assert settings.framework("demo").url == "http://127.0.0.1:7001"
    assert settings.watch.max_restarts == 9
    assert "settings.local.json" in settings.source


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"frameworks": {"demo": {"preset": "demo", "prot": 1}}},
            r"frameworks\.demo\.prot: unknown key",
        ),
        ({"watch": {"health_interval_s": "5"}}, r"watch\.health_interval_s: .*valid number"),
        ({"watch": {"health_interval_s": 0}}, r"watch\.health_interval_s: .*greater than 0"),
        (
            {"frameworks": {"x": {"preset": "stable-cascade"}}, "default_framework": "x"},
            r"frameworks\.x\.preset: unknown preset 'stable-cascade' \(known: .*comfyui",
        ),
        ({"default_framework": "comfy"}, r"default_framework: 'comfy' is not defined"),
        (
            {"frameworks": {"m": {"command": "python serve.py"}}, "default_framework": "m"},
            r"frameworks\.m\.url: required",
        ),
        (
            {"frameworks": {"bad name": {"preset": "demo"}}, "default_framework": "bad name"},
            r"frameworks\.bad name: a framework name may use",
        ),
        (
            {
                "frameworks": {"d": {"preset": "demo", "ready_pattern": "("}},
                "default_framework": "d",
            },
            r"frameworks\.d\.ready_pattern: not a valid regular expression",
        ),
        (
            {
                "frameworks": {"d": {"preset": "demo", "stop_signal": "SIGNOPE"}},
                "default_framework": "d",
            },
            r"frameworks\.d\.stop_signal: unknown signal",
        ),
        (
            {"frameworks": {"d": {"preset": "demo", "port": 70000}}, "default_framework": "d"},
            r"frameworks\.d\.port: .*less than or equal to 65535",
        ),
        ({"logs": {"keep_runs": True}}, r"logs\.keep_runs: .*valid integer"),
        ([1, 2], r"top level must be a JSON object"),
        (
            {
                "frameworks": {"q": {"command": "python 'unclosed", "port": 1}},
                "default_framework": "q",
            },
            r"frameworks\.q\.command: No closing quotation",
        ),
    ],
)
def test_invalid_settings_name_the_key(tmp_path, data, expected):
    path = write(tmp_path, data)
    with pytest.raises(SettingsError, match=expected) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_broken_json_names_line_and_column(tmp_path):
    path = write(tmp_path, '{\n  "default_framework": "demo",\n  "frameworks": {,}\n}\n')
    with pytest.raises(SettingsError, match=r"line 3, column 18: invalid JSON"):
        load_settings(path)


def test_broken_local_override_is_named(tmp_path):
    path = write(tmp_path, {})
    write(tmp_path, "{oops", "settings.local.json")
    with pytest.raises(SettingsError, match=r"settings\.local\.json: line 1, column 2"):
        load_settings(path)


def test_cli_refuses_bad_settings_and_starts_nothing(tmp_path):
    path = write(tmp_path, {"watch": {"failure_threshold": "three"}, "logs": {"dir": "logs"}})
    proc = run_app("--settings", str(path), "--no-server")
    assert proc.returncode == 2
    assert "watch.failure_threshold" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "logs").exists()  # nothing started, nothing written


def test_cli_missing_settings_file(tmp_path):
    proc = run_app("--settings", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_near_misses_are_named_with_what_was_meant(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps({"watch": {"startup_timout_s": 5}, "frameworks": {"d": {"preset": "demoo"}}})
    )
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    text = str(err.value)
    assert "watch.startup_timout_s: unknown key (did you mean 'startup_timeout_s'?)" in text
    assert "frameworks.d.preset: unknown preset 'demoo' (did you mean 'demo'?)" in text
    path.write_text(
        json.dumps({"frameworks": {"demo": {"preset": "demo"}}, "default_framework": "dmeo"})
    )
    with pytest.raises(
        SettingsError, match=r"'dmeo' is not defined in frameworks \(did you mean 'demo'\?\)"
    ):
        load_settings(path)


def test_a_mistake_in_the_local_override_names_that_file(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"frameworks": {"demo": {"preset": "demo"}}}))
    (tmp_path / "settings.local.json").write_text(
        json.dumps({"frameworks": {"demo": {"comand": "x"}}, "server": {"port": 5}})
    )
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    text = str(err.value)
    assert "(in settings.local.json) frameworks.demo.comand: unknown key" in text
    assert "did you mean 'command'?" in text

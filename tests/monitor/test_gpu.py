"""GPU snapshots through a pynvml-shaped fake, a fake nvidia-smi, and the real no-GPU path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FAKES, demo, running

from watchdog.monitor import gpu


def test_two_gpus_and_unsupported_metrics_are_na(fake_nvml):
    fake_nvml.CONFIG["devices"].append(
        {
            "name": b"Tesla T4",
            "uuid": "GPU-bbbb",
            "util": None,
            "mem_util": None,
            "total_mb": 15360,
            "base_used_mb": 0,
            "temp": 30,
            "power_mw": None,
            "limit_mw": None,
            "fan": None,
            "sm": 300,
            "mem": None,
        }
    )
    reader = gpu.make_reader()
    assert reader.source == "nvml"
    snap = reader.read()
    assert snap.available and len(snap.devices) == 2 and snap.driver == "550.54.15"
    h200, t4 = snap.to_dict()["devices"]
    assert h200["name"] == "NVIDIA H200" and h200["util_pct"] == 37.0
    assert h200["power_w"] == pytest.approx(123.456) and h200["power_limit_w"] == 700.0
    assert h200["fan_pct"] == "n/a"  # a data-centre board has no fan
    assert t4["name"] == "Tesla T4"  # bytes from older nvidia-ml-py are decoded
    assert t4["util_pct"] == "n/a" and t4["power_w"] == "n/a" and t4["mem_clock_mhz"] == "n/a"
    assert t4["mem_total_mb"] == 15360


def test_nvml_is_initialised_once(fake_nvml):
    reader = gpu.make_reader()
    for _ in range(3):
        reader.read()
    assert fake_nvml.calls["init"] == 1


def test_framework_processes_are_marked(fake_nvml, make_settings, supervise):
    fake_nvml.CONFIG["others"] = [{"pid": 1, "gpu": 0, "mb": 300}]
    sup = supervise(make_settings(frameworks={"demo": demo()}))
    status = sup.wait_for(running, timeout=10)
    snap = gpu.make_reader().read(framework_pids=sup.tree_pids())
    by_pid = {p.pid: p for p in snap.processes}
    assert by_pid[status.pid].in_framework and by_pid[status.pid].used_mb == 4096
    assert not by_pid[1].in_framework and by_pid[1].used_mb == 300
    assert snap.framework_mb() == 4096
    assert snap.devices[0].mem_used_mb == 512 + 4096 + 300


def test_hidden_per_process_memory_is_na(fake_nvml, make_settings, supervise):
    fake_nvml.CONFIG["framework_proc_mb_hidden"] = True  # usedGpuMemory None (WDDM, MIG)
    sup = supervise(make_settings(frameworks={"demo": demo()}))
    sup.wait_for(running, timeout=10)
    snap = gpu.make_reader().read(framework_pids=sup.tree_pids())
    assert snap.to_dict()["processes"][0]["used_mb"] == "n/a"


def test_no_library_no_smi_is_a_normal_state(fake_nvml, monkeypatch):
    fake_nvml.CONFIG["init_error"] = fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND
    monkeypatch.setenv("PATH", "/nonexistent")
    reader = gpu.make_reader()
    snap = reader.read()
    assert not snap.available and snap.message == "No NVIDIA GPU detected"
    assert snap.to_dict()["devices"] == [] and snap.to_dict()["driver"] == "n/a"


def test_nvidia_smi_fallback_reads_the_csv(fake_nvml, monkeypatch):
    fake_nvml.CONFIG["init_error"] = fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    reader = gpu.make_reader()
    assert reader.source == "nvidia-smi"
    snap = reader.read(framework_pids={4242})
    assert [d.name for d in snap.devices] == ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090"]
    rtx = snap.to_dict()["devices"][1]
    assert rtx["power_w"] == "n/a" and rtx["power_limit_w"] == "n/a" and rtx["fan_pct"] == "n/a"
    assert snap.devices[0].power_w == pytest.approx(412.35) and snap.devices[0].mem_used_mb == 20480
    mine, other = snap.processes
    assert mine.pid == 4242 and mine.in_framework and mine.used_mb == 18000 and mine.gpu_index == 0
    assert other.gpu_index == 1 and other.used_mb is None and not other.in_framework


def test_this_machine_has_no_gpu_and_says_so():
    if shutil.which("nvidia-smi") or Path("/dev/nvidia0").exists():
        pytest.skip("this machine has an NVIDIA GPU")
    snap = gpu.make_reader().read()
    assert not snap.available and snap.message.startswith("No NVIDIA GPU detected")

"""``GET /metrics``: the watchdog in Prometheus' text format, for many VMs at once.

Behind the page's gate like every route (a Bearer token or the page's password). A
scrape asks the core once (``/metrics`` on the control socket: the status, the
journal's counters, the sampler's stored GPU snapshot and sample) and adds the door's
own request count; it never calls NVML or reads a log.

    scrape_configs:
      - job_name: sd-watchdog
        authorization: {credentials: "<the token set-password printed>"}
        static_configs: [{targets: ["vm1:5005"]}]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..core.states import State

MB = 1024 * 1024
UP = (State.RUNNING.value, State.UNHEALTHY.value)


@dataclass
class DoorStats:
    """Counted by the door, read by ``/metrics`` (one front, one door)."""

    requests: int = 0


class _Snapshot:
    """A prometheus_client collector over one answer of the core."""

    def __init__(self, data: dict[str, Any], door: DoorStats) -> None:
        self.data = data
        self.door = door
        self.by_slot = False

    def collect(self) -> list[Metric]:
        statuses = self.data.get("statuses") or [self.data.get("status") or {}]
        # With GPU slots every per-framework series carries ``slot``; without, none does.
        self.by_slot = any(s.get("slot") for s in statuses)
        slot = ["slot"] if self.by_slot else []
        up = GaugeMetricFamily(
            "sdwatchdog_framework_up", "1 while the chosen framework is ready",
            labels=["framework", *slot],
        )  # fmt: skip
        states = GaugeMetricFamily(
            "sdwatchdog_framework_state", "1 for the state it is in",
            labels=["framework", "state", *slot],
        )  # fmt: skip
        busy = GaugeMetricFamily("sdwatchdog_busy", "1 while a generation runs", labels=slot)
        idle = GaugeMetricFamily(
            "sdwatchdog_idle_seconds", "Seconds since the framework was last used (idle policy)",
            labels=slot,
        )  # fmt: skip
        for status in statuses:
            framework, state = str(status.get("framework", "")), str(status.get("state", ""))
            which = [str(status.get("slot"))] if self.by_slot else []
            up.add_metric([framework, *which], 1.0 if state in UP and status.get("ready") else 0.0)
            for each in State:
                on = 1.0 if each.value == state else 0.0
                states.add_metric([framework, each.value, *which], on)
            busy.add_metric(which, 1.0 if status.get("busy") else 0.0)
            seconds = (status.get("idle") or {}).get("idle_s")
            if isinstance(seconds, (int, float)):
                idle.add_metric(which, float(seconds))
        out: list[Metric] = [up, states, busy, idle, *self._counters(), *self._usage()]
        door = CounterMetricFamily(
            "sdwatchdog_door_requests", "Requests through the door to the framework"
        )
        door.add_metric([], float(self.door.requests))
        return [*out, door]

    def _counters(self) -> list[Metric]:
        counters = self.data.get("counters") or {}
        slot = ["slot"] if self.by_slot else []
        restarts = CounterMetricFamily(
            "sdwatchdog_restarts", "Starts by the watchdog after a failure",
            labels=["framework", *slot],
        )  # fmt: skip
        for row in counters.get("restarts", []):
            which = [str(row.get("slot", ""))] if slot else []
            restarts.add_metric([row["framework"], *which], float(row["count"]))
        crashes = CounterMetricFamily(
            "sdwatchdog_crashes", "Crashes, hangs and failed starts",
            labels=["framework", "cause", *slot],
        )  # fmt: skip
        for row in counters.get("crashes", []):
            which = [str(row.get("slot", ""))] if slot else []
            crashes.add_metric([row["framework"], row["cause"], *which], float(row["count"]))
        return [restarts, crashes]

    def _usage(self) -> list[Metric]:
        gpu = self.data.get("gpu") or {}
        util = GaugeMetricFamily(
            "sdwatchdog_gpu_utilization_ratio", "GPU utilisation, 0 to 1", labels=["gpu"]
        )
        used = GaugeMetricFamily(
            "sdwatchdog_gpu_memory_used_bytes", "GPU memory in use", labels=["gpu"]
        )
        for device in gpu.get("devices", []) if gpu.get("available") else []:
            index = str(device.get("index"))
            if isinstance(device.get("util_pct"), (int, float)):
                util.add_metric([index], device["util_pct"] / 100)
            if isinstance(device.get("mem_used_mb"), (int, float)):
                used.add_metric([index], device["mem_used_mb"] * MB)
        rss = GaugeMetricFamily(
            "sdwatchdog_framework_rss_bytes", "RAM of the framework's whole process tree"
        )
        sample = self.data.get("sample") or {}
        if isinstance(sample.get("framework_rss_mb"), (int, float)):
            rss.add_metric([], sample["framework_rss_mb"] * MB)
        return [util, used, rss]


def metrics_text(data: dict[str, Any], door: DoorStats) -> bytes:
    """The exposition text for one answer of the core."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(data, door))
    return generate_latest(registry)

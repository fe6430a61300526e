"""sd-watchdog: keeps one Stable Diffusion web UI alive on a GPU VM."""

__version__ = "0.1.0"

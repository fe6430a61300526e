"""sd-watchdog: keeps one Stable Diffusion web UI alive on a GPU VM."""

import os

__version__ = "0.2.0"

# Before anything imports gradio: the control page never phones home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

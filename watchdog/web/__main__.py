"""``python -m watchdog.web``: the front, as the core starts it (see front.py)."""

import sys

from .front import main

sys.exit(main())

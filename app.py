"""sd-watchdog entry point (the command line lives in ``watchdog/cli``).

python app.py                          # supervise the default framework, page on :5005
python app.py --settings my.json --no-server
python app.py --no-watch               # page and logs only, never start or stop
python app.py set-password admin       # credentials for the page, API and routes
python app.py status                   # ask the running watchdog (switch, logs -f, …)
"""

from __future__ import annotations

import sys

from watchdog.cli.main import main

if __name__ == "__main__":
    sys.exit(main())

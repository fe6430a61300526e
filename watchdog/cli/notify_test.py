"""``python app.py notify-test``: one message to every ``notify.urls`` service, now.

Says per service (its URL masked) whether it took the message, so a wrong token is
found before the first real crash. Needs no running watchdog.
"""

from __future__ import annotations

import argparse
import socket
import sys

from ..notify.delivery import Notifier
from ..notify.policy import Message
from .common import EXIT_SETTINGS, settings_or_say

EXIT_FAILED = 1


def notify_test(args: argparse.Namespace) -> int:
    settings = settings_or_say(args.settings)
    if settings is None:
        return EXIT_SETTINGS
    n = settings.notify
    notifier = Notifier(n.urls, n.events, n.min_interval_s, lambda *_a, **_k: None, "")
    for error in notifier.errors:
        print(f"sd-watchdog: {error}", file=sys.stderr)
    if not notifier.services:
        print("sd-watchdog: no notify.urls to test: add Apprise URLs to the settings' notify.urls")
        return EXIT_FAILED
    machine = socket.gethostname()
    message = Message(
        "test",
        "",
        f"sd-watchdog on {machine}: test message",
        f"If you read this, {machine} can reach you. Events sent: {', '.join(n.events)}.",
        "info",
    )
    failed = notifier.send(message)
    for service in notifier.services:
        print(f"{'failed' if service.shown in failed else 'sent'}: {service.shown}")
    return EXIT_FAILED if failed or notifier.errors else 0

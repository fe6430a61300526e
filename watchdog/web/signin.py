"""The sign-in form: what a browser without a session sees instead of Basic's pop-up.

A page of its own, with nothing loaded from elsewhere (no script at all), so it works
from a phone on a VM without internet. ``next`` is where the browser goes after
signing in: only a path on the same server (see :func:`safe_next`), never a URL.

    >>> safe_next("/view?filename=a.png"), safe_next("//evil.example/"), safe_next("https://x")
    ('/view?filename=a.png', '/', '/')
"""

from __future__ import annotations

import html

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Sign in · sd-watchdog</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f3f4f6;margin:0;display:flex;
min-height:100vh;align-items:center;justify-content:center}}
form{{background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0002;
width:min(22rem,90vw)}}
h1{{font-size:1.2rem;margin:0 0 .3rem}} p{{color:#4b5563;margin:.2rem 0 1rem}}
label{{display:block;margin:.8rem 0 .2rem;font-size:.9rem}}
input{{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid #d1d5db;
border-radius:8px}}
button{{margin-top:1.2rem;width:100%;padding:.7rem;font-size:1rem;border:0;border-radius:8px;
background:#2563eb;color:#fff}}
.sdw-error{{color:#b91c1c;font-weight:600}}
</style></head>
<body><form method="post" action="{action}" id="sdw-signin">
<h1>sd-watchdog</h1><p>Sign in to {what}.</p>
{message}
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required value="{user}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form></body></html>
"""


def safe_next(target: str | None) -> str:
    """A path on this server, or ``/``: an open redirect would let a link to our
    sign-in page send the user on to a look-alike after they sign in."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x20 or c == "\\" for c in target):
        return "/"
    return target


def signin_page(action: str, next_path: str, what: str, message: str = "", user: str = "") -> str:
    e = html.escape
    return _PAGE.format(
        action=e(action),
        next=e(safe_next(next_path)),
        what=e(what),
        message=f"<p class='sdw-error' role='alert'>{e(message)}</p>" if message else "",
        user=e(user[:100]),
    )

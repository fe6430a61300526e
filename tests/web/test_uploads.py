"""Gradio's upload route is shut: the page has no upload component."""

from __future__ import annotations

import requests
from conftest import PASSWORD, USER


def test_the_page_takes_no_uploads(make_settings, serve, tmp_path):
    web = serve(make_settings(), password=True)
    files = {"files": ("x.bin", b"\0" * 1024 * 1024)}
    stranger = requests.post(f"{web.url}gradio_api/upload", files=files, timeout=20)
    assert stranger.status_code == 401
    owner = requests.post(
        f"{web.url}gradio_api/upload", files=files, auth=(USER, PASSWORD), timeout=20
    )
    assert owner.status_code == 403 and owner.json()["error"] == "this page takes no uploads"

"""The log folder is its owner's alone: 0700, and every file in it 0600.

The journal holds client addresses and the logs hold whatever a framework prints
(tokens, paths, prompts): no other user of the machine reads them. Files are created
0600 from the first byte with :func:`opener`; :func:`make_private` also mends a
folder left readable by an older version.

    >>> open(path, "a", opener=opener)                            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def opener(path: str | os.PathLike[str], flags: int) -> int:
    return os.open(path, flags, FILE_MODE)


def make_private(folder: Path) -> None:
    """Create ``folder`` (0700) or make it and what it holds private; never raises
    for a file it cannot change (supervision matters more)."""
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(folder, DIR_MODE)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), DIR_MODE)
        for name in files:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):
                if not os.path.islink(path):
                    os.chmod(path, FILE_MODE)

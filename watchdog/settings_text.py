"""Reading settings files and saying what is wrong with them, in the user's terms:
the file, the key path, and what was probably meant.

    >>> did_you_mean("startup_timout_s", ["startup_timeout_s", "stop_timeout_s"])
    " (did you mean 'startup_timeout_s'?)"
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel


class SettingsError(Exception):
    """A settings file that cannot be used; the message is meant for the user as is."""


def read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text ({exc.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: the top level must be a JSON object {{...}}")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Objects merge key by key; anything else in ``override`` replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'startup_timeout_s'?)`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def keys_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a settings object accepts where ``loc`` points (its last part is the
    unknown key): the fields of that model, walking dicts of models by their key."""
    model: Any = root
    parts = list(loc[:-1])
    while parts:
        info = model.model_fields.get(str(parts.pop(0)))
        if info is None:
            return []
        kind = info.annotation
        if get_origin(kind) is dict:  # frameworks.<name>: skip the name
            kind = get_args(kind)[1]
            if parts:
                parts.pop(0)
        models = [k for k in (get_args(kind) or (kind,)) if isinstance(k, type)]
        kind = next((k for k in models if issubclass(k, BaseModel)), None)
        if kind is None:
            return []
        model = kind
    return list(model.model_fields)


def describe(root: type[BaseModel], error: dict[str, Any], owner: str = "") -> str:
    path = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        loc = tuple(error["loc"])
        message = "unknown key" + did_you_mean(str(loc[-1]), keys_at(root, loc))
    elif "input" in error and error["type"] not in ("missing",) and not _secret(error["loc"]):
        shown = json.dumps(error["input"], default=str)
        message += f" (got {shown[:60]}{'…' if len(shown) > 60 else ''})"
    return f"{owner}{path}: {message}"


def _secret(loc: tuple[Any, ...] | list[Any]) -> bool:
    """Values never echoed: notify URLs hold tokens, a framework's env and the idle
    command may hold keys."""
    parts = [str(p) for p in loc]
    whole_idle = parts == ["idle"]  # its own check's input is the object, command too
    return parts[:2] in (["notify", "urls"], ["idle", "command"]) or whole_idle or "env" in parts


def holds(data: dict[str, Any] | None, loc: tuple[Any, ...]) -> bool:
    """Whether ``data`` has the value at ``loc`` (which of two files holds a mistake)."""
    node: Any = data
    for part in loc:
        if not isinstance(node, dict) or str(part) not in node:
            return False
        node = node[str(part)]
    return True

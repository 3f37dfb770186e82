"""The app's own settings across sessions and workspaces (the theme): one small JSON file in the user's config folder.

``$XDG_CONFIG_HOME/ladder/ui.json`` (``~/.config`` when unset or relative). A file that cannot
be read counts as empty; one that cannot be written is skipped: a preference is never worth an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loop.places import user_folder


def path() -> Path:
    return user_folder("XDG_CONFIG_HOME", ".config") / "ui.json"


def load() -> dict[str, Any]:
    try:
        data = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(**values: Any) -> None:
    from store.ledger import write_atomic  # noqa: PLC0415 - the database stack stays off the app's start-up path

    try:
        write_atomic(path(), json.dumps(load() | values))
    except OSError:
        pass

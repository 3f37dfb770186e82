"""Where a workspace keeps things: the inbox, the models folder, the database and the config must not overlap.

Ladder moves every file it reads out of the inbox (to processed/ or quarantine/), so an
inbox that is, or holds, the workspace's own files would move the database, the config or
the GGUFs away. Such a config is refused when it is loaded, with one line saying why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loop.errors import UserError

MEMORY_URLS = ("sqlite://", "sqlite:///:memory:")


def user_folder(variable: str, default: str) -> Path:
    """Ladder's folder under an XDG base directory ($XDG_CACHE_HOME, $XDG_CONFIG_HOME), or under ~/default
    when the variable is unset or relative (the XDG spec says to ignore a relative one)."""
    base = os.environ.get(variable, "")
    return (Path(base) if base and Path(base).is_absolute() else Path.home() / default) / "ladder"


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check(cfg: Any) -> None:
    """`cfg` is the loop.config.Config being loaded (this module comes before it)."""
    where = cfg.path.name
    root, inbox, models, config = _real(cfg.root), _real(cfg.inbox_dir), _real(cfg.models_dir), _real(cfg.path)
    fix = "point 'workspace.inbox' at a folder of its own, such as \"inbox\""
    if _within(root, inbox):
        what = "the workspace folder itself" if inbox == root else "a folder that holds the workspace"
        raise UserError(f"{where}: 'workspace.inbox' is {what}; Ladder moves every file it reads out of the inbox, "
                        f"so it would move the database, the config and the models: {fix}")
    if _within(models, inbox):
        raise UserError(f"{where}: 'workspace.inbox' holds the models folder; Ladder moves every file it reads out "
                        f"of the inbox, so it would move the generations away: {fix}")
    if _within(inbox, models):
        raise UserError(f"{where}: 'workspace.inbox' is inside the models folder ({cfg.data['workspace']['models']}); "
                        f"{fix}")
    if _within(config, inbox):
        raise UserError(f"{where}: the config file is inside the inbox, which Ladder empties as it reads: {fix}")
    url = cfg.data["workspace"]["database"]
    if url.strip() in MEMORY_URLS:
        raise UserError(f"{where}: 'workspace.database' is a database in memory, which loses every record when the "
                        "command ends; use a file, such as sqlite:///ladder.db")
    db = sqlite_file(cfg.db_url)
    if db is not None and _within(_real(db), inbox):
        raise UserError(f"{where}: 'workspace.database' is inside the inbox, which Ladder empties as it reads; keep "
                        "the database outside it, such as sqlite:///ladder.db")
    if db is None:
        check_driver(url, where)


def sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(url[len(prefix):].split("?")[0]) if url.startswith(prefix) else None


def check_driver(url: str, where: str) -> None:
    """A server database's Python driver must be installed (SQLite's comes with Python)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - only for server URLs; SQLite users never pay for it
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError  # noqa: PLC0415

    try:
        dialect = make_url(url).get_dialect()
        dialect.import_dbapi()
    except NoSuchModuleError:  # before ArgumentError, which it is a kind of
        raise UserError(f"{where}: 'workspace.database' names an unknown kind of database ({url.split(':')[0]}); "
                        "use sqlite:/// or postgresql://") from None
    except ArgumentError:
        raise UserError(f"{where}: 'workspace.database' is not a database URL ({url!r}); use one such as "
                        "sqlite:///ladder.db or postgresql://user@host/ladder") from None
    except ImportError as e:
        raise UserError(f"{where}: 'workspace.database' needs the Python package {e.name!r}, which is not installed: "
                        f"install it into Ladder's environment, or use sqlite:///ladder.db") from None

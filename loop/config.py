"""Load and validate a workspace's config.toml: the shipped, commented default, the user's keys over it, one schema."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from loop import places, schema
from loop.errors import UserError

TEMPLATE = Path(__file__).parent / "assets" / "config.toml"


def defaults() -> dict[str, Any]:
    with TEMPLATE.open("rb") as f:
        return tomllib.load(f)


@dataclass(frozen=True)
class Config:
    """A validated config: sections as attributes, plus the resolved workspace paths."""

    path: Path
    data: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return _namespace(self.data[name])
        except KeyError:
            raise AttributeError(name) from None

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def inbox_dir(self) -> Path:
        return self.resolve(self.data["workspace"]["inbox"])

    @property
    def models_dir(self) -> Path:
        return self.resolve(self.data["workspace"]["models"])

    @property
    def jobs_dir(self) -> Path:
        return self.models_dir / "jobs"

    @property
    def ledger_csv(self) -> Path:
        return self.models_dir / "lineage_ledger.csv"

    @property
    def db_url(self) -> str:
        url = self.data["workspace"]["database"]
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
            return prefix + str(self.resolve(url[len(prefix):]))
        return url


def _namespace(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    return value


def load(path: str | Path) -> Config:
    """Read a config file; every problem becomes a UserError naming the key and the fix."""
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise UserError(f"no config at {path}: run 'ladder init' to create a workspace, or pass --config PATH")
    try:
        with path.open("rb") as f:
            user = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e}); fix the file or copy the default from 'ladder init'") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    data = merge(defaults(), user, path.name)
    schema.check(data, path.name)
    cfg = Config(path, data)
    places.check(cfg)
    return cfg


def merge(base: dict[str, Any], user: dict[str, Any], where: str, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    out = dict(base)
    for key, value in user.items():
        dotted = ".".join(prefix + (key,))
        if key not in base:
            hint = difflib.get_close_matches(key, list(base), n=1)
            tip = f" (did you mean '{'.'.join(prefix + (hint[0],))}'?)" if hint else ""
            raise UserError(f"{where}: unknown key '{dotted}'{tip}; remove it or check the spelling")
        default = base[key]
        if isinstance(default, dict):
            # Tables of weights and of readiness minimums may gain new names (a record kind, a category); no other may.
            if not isinstance(value, dict):
                raise UserError(f"{where}: '{dotted}' must be a table [{dotted}]")
            if prefix + (key,) in (("karma", "weights"), ("readiness",)):
                out[key] = {**default, **value}
            else:
                out[key] = merge(default, value, where, prefix + (key,))
        else:
            out[key] = value
    return out

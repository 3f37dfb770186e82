"""Load and validate a workspace's config.toml against the shipped, commented default."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from loop.errors import UserError

TEMPLATE = Path(__file__).parent / "assets" / "config.toml"

# Keys whose value must be one of a few words.
CHOICES = {
    ("model", "export_dtype"): {"f16", "q8_0"},
    ("train", "lr_scheduler"): {"cosine", "linear", "constant"},
    ("train", "backend"): {"auto", "trl", "unsloth"},
}
# Keys that accept either a word or a list of words.
WORD_OR_LIST = {("train", "target_modules")}
# Keys that must be positive (> 0); ratios must lie strictly between 0 and 1.
POSITIVE = {
    ("karma", "threshold"), ("train", "steps"), ("train", "learning_rate"), ("train", "batch_size"),
    ("train", "grad_accum"), ("train", "max_length"), ("train", "lora_r"), ("train", "lora_alpha"),
    ("eval", "threads"), ("eval", "context"), ("eval", "max_tokens"), ("stop_rule", "generations"),
    ("model", "keep_full_weights"), ("train", "dpo_steps"), ("train", "dpo_beta"), ("train", "dpo_learning_rate"),
}
RATIOS = {("dataset", "holdout_ratio"), ("eval", "match_threshold")}


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
    return Config(path, merge(defaults(), user, path.name))


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
            # Tables of weights may gain new names (a new record kind); other tables may not.
            if not isinstance(value, dict):
                raise UserError(f"{where}: '{dotted}' must be a table [{dotted}]")
            if prefix + (key,) == ("karma", "weights"):
                out[key] = {**default, **{k: _check(v, 1.0, f"{dotted}.{k}", where) for k, v in value.items()}}
            else:
                out[key] = merge(default, value, where, prefix + (key,))
        else:
            out[key] = _check_key(prefix + (key,), value, default, dotted, where)
    return out


def _check_key(key: tuple[str, ...], value: Any, default: Any, dotted: str, where: str) -> Any:
    if key in WORD_OR_LIST:
        ok = isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
        if not ok:
            raise UserError(f"{where}: '{dotted}' must be a word or a list of module names, got {value!r}")
        return value
    value = _check(value, default, dotted, where)
    if key in CHOICES and value not in CHOICES[key]:
        allowed = ", ".join(sorted(CHOICES[key]))
        raise UserError(f"{where}: '{dotted}' is {value!r}; use one of {allowed}")
    if key in POSITIVE and value <= 0:
        raise UserError(f"{where}: '{dotted}' must be greater than 0, got {value!r}")
    if key in RATIOS and not 0 < value < 1:
        raise UserError(f"{where}: '{dotted}' must lie between 0 and 1, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise UserError(f"{where}: '{dotted}' must not be negative, got {value!r}")
    return value


def _check(value: Any, default: Any, dotted: str, where: str) -> Any:
    want = type(default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is list:
        inner = {type(v) for v in default} or {str}
        if not isinstance(value, list) or not all(type(v) in inner for v in value):
            raise UserError(f"{where}: '{dotted}' must be a list of {_name(next(iter(inner)))}s, got {value!r}")
        return value
    if type(value) is not want:
        raise UserError(f"{where}: '{dotted}' must be {_name(want)}, got {value!r}")
    return value


def _name(t: type) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(t, t.__name__)

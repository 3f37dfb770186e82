"""Export an HF folder (a merged generation) to a GGUF file that llama.cpp runs.

Key-values (architecture, tokenizer, chat template) come from the parent generation's GGUF when
there is one, else from the folder's config.json and tokenizer.json (limits in `loop.gguf_meta`).
Families (HF model_type -> llama.cpp architecture): llama and mistral -> llama, qwen2, qwen3,
gemma2, phi3. Tensors are renamed with gguf's TensorNameMap. Layout changes llama.cpp expects:
- llama: the Q/K projections are permuted back into llama.cpp's interleaved rotary layout
  (transformers un-permutes them on GGUF load; a file without the permutation loads but produces
  garbage). The other families use llama.cpp's NEOX rotary mode, which is HF's layout: no change.
- gemma2: HF's RMSNorm multiplies by (1 + weight), llama.cpp by weight: every norm gets +1; the
  output projection is the embedding (tied), so lm_head is not written.
- phi3: the fused qkv_proj and gate_up_proj are written fused (attn_qkv, ffn_up), as llama.cpp reads
  them; longrope (the 128k variants) needs rope-factor tensors and is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from loop import faults
from loop.errors import UserError
from loop.hashing import sha256_file

DTYPES = ("f16", "q8_0")
# HF model_type -> GGUF architecture whose layout this exporter writes.
ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma2": "gemma2",
                 "phi3": "phi3"}
# Buffers some checkpoints carry that have no place in a GGUF.
_SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)


def export_gguf(hf_dir: Path, out_path: Path, template_gguf: Path | None, dtype: str = "f16") -> str:
    """Write `hf_dir` as a GGUF at `out_path` and return the file's SHA-256 hex digest.

    `dtype` is "f16" (1-D norm weights stay f32, as llama.cpp does) or "q8_0" (2-D weights whose rows
    are a multiple of 32; others f16). The file is written beside `out_path` and renamed into place,
    so `out_path` is never half-written.
    """
    import gguf

    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if dtype not in DTYPES:
        raise UserError(f"unknown GGUF dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    config_path = hf_dir / "config.json"
    if not config_path.is_file():
        raise UserError(f"no config.json in {hf_dir}")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise UserError(f"GGUF export supports the model families {', '.join(ARCHITECTURES)}; this model's "
                        f"architecture is {model_type!r} ({', '.join(config.get('architectures') or [])})")
    arch = ARCHITECTURES[model_type]
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if arch == "phi3" and rope.get("rope_type", rope.get("type")) in ("longrope", "su", "yarn"):
        raise UserError("phi3 with long-context rope scaling (the 128k variants) is not supported: use a 4k variant")
    if template_gguf is not None and not Path(template_gguf).is_file():
        raise UserError(f"parent GGUF not found: {template_gguf}")

    from loop.model import gguf_meta

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        if template_gguf is not None:
            gguf_meta.copy_template(writer, Path(template_gguf), config)
        else:
            gguf_meta.add_from_hf(writer, hf_dir, config)
        file_type = gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
        writer.add_file_type(int(file_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for name, data, raw_dtype in _gguf_tensors(hf_dir, config, arch, dtype):
            writer.add_tensor(name, data, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.flush()
        for f in writer.fout or []:
            os.fsync(f.fileno())
        writer.close()
        faults.point("export.written")
        os.replace(tmp, out_path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return sha256_file(out_path)


def _gguf_tensors(
    hf_dir: Path, config: dict[str, Any], arch: str, dtype: str
) -> Iterator[tuple[str, np.ndarray, Any]]:
    """(GGUF name, data, raw GGML type or None) for every weight, in checkpoint order."""
    import gguf

    n_layers = config["num_hidden_layers"]
    n_head = config["num_attention_heads"]
    n_kv_head = config.get("num_key_value_heads") or n_head
    tied = bool(config.get("tie_word_embeddings", False)) or arch == "gemma2"  # Gemma 2 always ties
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], n_layers)
    seen: set[str] = set()
    for hf_name, weight in _read_weights(hf_dir):
        if hf_name.endswith(_SKIPPED_SUFFIXES) or (tied and hf_name == "lm_head.weight"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"cannot export tensor {hf_name!r}: no GGUF name for it in a {arch} model")
        if name in seen:
            raise UserError(f"two tensors map to GGUF name {name!r}")
        seen.add(name)
        if arch == "llama" and name.endswith("attn_q.weight"):
            weight = permute_rotary(weight, n_head)
        elif arch == "llama" and name.endswith("attn_k.weight"):
            weight = permute_rotary(weight, n_kv_head)
        elif arch == "gemma2" and name.endswith("norm.weight"):
            weight = weight + 1.0
        yield (name, *_encode(weight, dtype))


def permute_rotary(weight: np.ndarray, n_head: int) -> np.ndarray:
    """HF's half-split rotary rows -> llama.cpp's interleaved pairs, per head (inverse: `unpermute_rotary`)."""
    rows = weight.shape[0]
    return weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def unpermute_rotary(weight: np.ndarray, n_head: int) -> np.ndarray:
    rows = weight.shape[0]
    return weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _encode(weight: np.ndarray, dtype: str) -> tuple[np.ndarray, Any]:
    import gguf

    if weight.ndim <= 1:
        return np.ascontiguousarray(weight, dtype=np.float32), None
    if dtype == "q8_0" and weight.shape[-1] % 32 == 0:
        q8 = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(np.ascontiguousarray(weight, dtype=np.float32), q8), q8
    return np.ascontiguousarray(weight, dtype=np.float16), None


def _read_weights(hf_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor of the folder's safetensors files, as fp32 numpy arrays."""
    from safetensors import safe_open

    index = hf_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()
        files = [hf_dir / name for name in sorted(set(shards))]
    else:
        files = sorted(hf_dir.glob("model*.safetensors"))
    if not files:
        raise UserError(f"no .safetensors weights in {hf_dir}")
    for path in files:
        # torch, not numpy, as the framework: numpy cannot read bf16 checkpoints.
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                yield key, f.get_tensor(key).float().numpy()

"""Turn a workspace's base model (a GGUF file or a local HF folder) into a trainable fp32 HF folder."""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loop.errors import UserError

log = logging.getLogger(__name__)

# llama.cpp pre-tokenizer names whose split rule is "each digit alone, then GPT-2's byte-level regex".
# transformers does not rebuild that rule from a GGUF, so we restore it: without it a vocabulary
# with multi-digit tokens would split numbers differently from llama.cpp and from its training.
DIGIT_SPLIT_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}


def load_base_to_hf(base: Path, out_dir: Path) -> Path:
    """Write `base` as an fp32 HF folder (weights, config, tokenizer, generation config) at `out_dir`.

    The folder is built beside `out_dir` and renamed into place, so `out_dir` is either absent or
    complete. An existing `out_dir` is replaced.
    """
    base, out_dir = Path(base), Path(out_dir)
    if not base.exists():
        raise UserError(f"base model not found: {base}")
    with _read_once():
        model, tokenizer = _load(base)
        if getattr(tokenizer, "chat_template", None) is None and base.is_file():
            tokenizer.chat_template = _gguf_string(base, "tokenizer.chat_template")
    if getattr(tokenizer, "chat_template", None) is None:
        log.warning("base model %s has no chat template", base)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _load(base: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.logging import disable_progress_bar

    disable_progress_bar()  # the loading bars would break the CLI's one-line-per-stage output
    if base.is_file():
        folder, kwargs = base.parent, {"gguf_file": base.name}
    else:
        folder, kwargs = base, {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32, local_files_only=True, **kwargs
        )
    except Exception as e:  # noqa: BLE001 - any failure to read the base is the user's to fix
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read base model {base}: {reason}") from e

    if getattr(model, "hf_quantizer", None) is not None:
        # A GGUF is dequantized on load; the quantizer's config only blocks save_pretrained.
        model.hf_quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if any(p.dtype != torch.float32 for p in model.parameters()):
        model = model.float()
    if base.is_file():
        _restore_digit_split(tokenizer, _gguf_string(base, "tokenizer.ggml.pre"))
    return model, tokenizer


def _restore_digit_split(tokenizer, pre: str | None) -> None:
    if pre not in DIGIT_SPLIT_PRE or not hasattr(tokenizer, "backend_tokenizer"):
        return
    from tokenizers import pre_tokenizers

    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def _gguf_string(path: Path, key: str) -> str | None:
    import gguf

    field = gguf.GGUFReader(path).fields.get(key)
    return None if field is None else field.contents()


@contextmanager
def _read_once() -> Iterator[None]:
    """Parse a GGUF's header once and build each tensor-name map once while a base is converted.

    transformers reads the file's header anew for the tokenizer, the config and the weights, and
    we read it twice more; each parse walks every vocabulary string (3 s for the embedded model's
    49k). It also rebuilds the same tensor-name map for each of ~400 modules. Both are read-only,
    so one of each serves every caller (the embedded model's conversion took 25 s, now 13 s, to
    the same bytes). Its de-quantizing progress bar ignores transformers' switch and would break
    the CLI's one line per stage, so it is left out too.
    """
    import gguf
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    real_reader, real_map, real_bar = gguf.GGUFReader, gguf.get_tensor_name_map, gguf_utils.tqdm
    readers: dict[tuple, object] = {}

    def reader(path, mode="r"):
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = real_reader(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.cache(real_map)
    gguf_utils.tqdm = lambda items, *args, **kwargs: items
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map, gguf_utils.tqdm = real_reader, real_map, real_bar


def _replace_dir(new: Path, dest: Path) -> None:
    """Rename `new` to `dest`; an existing `dest` is moved aside first and removed afterwards."""
    if not dest.exists():
        os.replace(new, dest)
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)

"""Where training runs: TRL + PEFT on the CPU (or a CUDA GPU), or Unsloth on a CUDA GPU; loading the parent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from loop.errors import UserError

# What "all-linear" means to Unsloth, which wants names: the projections of a Llama-style block.
LLAMA_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_config(settings: dict):
    from peft import LoraConfig

    return LoraConfig(
        r=settings["lora_r"],
        lora_alpha=settings["lora_alpha"],
        lora_dropout=settings["lora_dropout"],
        target_modules=settings["target_modules"],
        bias="none",
        task_type="CAUSAL_LM",
    )


def choose_backend(settings: dict) -> str:
    import torch

    wanted = settings.get("backend", "auto")
    if wanted == "unsloth" and not torch.cuda.is_available():
        raise UserError('backend "unsloth" needs an NVIDIA GPU and none is available; use "trl" or "auto"')
    if wanted == "auto":
        return "unsloth" if torch.cuda.is_available() and importlib.util.find_spec("unsloth") else "trl"
    if wanted not in ("trl", "unsloth"):
        raise UserError(f"unknown train backend {wanted!r}: expected \"auto\", \"trl\" or \"unsloth\"")
    return wanted


def load_model(parent_dir: Path):
    """The parent model in fp32 (the TRL/CPU path)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(parent_dir, dtype=torch.float32)


def _load_unsloth(parent_dir: Path, settings: dict):
    """GPU only, untested on the CPU build machine: Unsloth's patched model, already wrapped in LoRA."""
    from unsloth import FastLanguageModel  # imported here only: it refuses to import without a GPU

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(parent_dir), max_seq_length=settings["max_length"], dtype=None, load_in_4bit=False
    )
    targets = settings["target_modules"]
    model = FastLanguageModel.get_peft_model(
        model,
        r=settings["lora_r"],
        lora_alpha=settings["lora_alpha"],
        lora_dropout=settings["lora_dropout"],
        target_modules=LLAMA_LINEARS if targets == "all-linear" else targets,
        bias="none",
        use_gradient_checkpointing="unsloth" if settings["gradient_checkpointing"] else False,
        random_state=settings["seed"],
    )
    return model, tokenizer

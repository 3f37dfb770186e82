"""The trained child's weights: how far LoRA moved them, an optional cap, and an atomic save."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from loop import faults


def save_atomically(model, tokenizer, out_dir: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.saving-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a generation folder is an ordinary one
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        faults.point("train.saving")
        if out_dir.exists():
            out_dir.rmdir()  # only an empty folder may stand in the way (checked before training)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def merge_fp32(parent_dir: Path, trained, settings: dict):
    """The parent's fp32 weights plus the trained LoRA delta, merged in fp32 on the CPU.

    `trained` is a PEFT model in any dtype (Unsloth's is bf16); only its adapter weights are read. The base
    weights come from the parent folder as they are, so nothing of the parent is rounded.
    """
    import torch
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    from loop.train.backends import load_model, lora_config

    state = {k: v.detach().to("cpu", torch.float32) for k, v in get_peft_model_state_dict(trained).items()}
    targets = sorted({name.rsplit(".", 1)[-1] for name, m in trained.named_modules() if hasattr(m, "lora_A")})
    fresh = get_peft_model(load_model(parent_dir), lora_config(settings | {"target_modules": targets or
                                                                           settings["target_modules"]}))
    missing = set_peft_model_state_dict(fresh, state)
    if getattr(missing, "unexpected_keys", None):
        raise RuntimeError(f"LoRA weights that fit no layer of the parent: {missing.unexpected_keys[:3]}")
    return fresh.merge_and_unload().to(torch.float32)


def _lora_layers(model) -> list[tuple[Any, str]]:
    from peft.tuners.lora import LoraLayer

    return [(m, name) for m in model.modules() if isinstance(m, LoraLayer)
            for name in m.active_adapters if name in m.lora_A]


def weight_change(model) -> float:
    """How far the LoRA update moves the adapted weights: ||delta W|| / ||W|| over all adapted layers."""
    import torch

    delta = base = 0.0
    with torch.no_grad():
        for module, name in _lora_layers(model):
            d = module.lora_B[name].weight.float() @ module.lora_A[name].weight.float() * module.scaling[name]
            delta += float(d.pow(2).sum())
            base += float(module.base_layer.weight.float().pow(2).sum())
    return (delta / base) ** 0.5 if base else 0.0


def cap_weight_change(model, cap: float) -> dict[str, float]:
    """Scale the LoRA update down so the weights move at most `cap` (relative); 0 means no cap.

    Moving the child back along the line to its parent is the cheapest guard against
    forgetting there is (weight-space interpolation, as in WiSE-FT): it needs no data and
    no second run.
    """
    before = weight_change(model)
    if cap <= 0 or before <= cap:
        return {"before": before, "after": before}
    factor = cap / before
    for module, name in _lora_layers(model):
        module.scaling[name] *= factor
    return {"before": before, "after": weight_change(model)}

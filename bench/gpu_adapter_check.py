"""Under Unsloth's fast LoRA path, does `disable_adapter()` give the base model's logits? (The distillation
trainer relies on it for the parent's distribution.) GPU only; run by bench/gpu_check.sh in .venv-gpu.

    .venv-gpu/bin/python bench/gpu_adapter_check.py PARENT_HF_FOLDER
"""

from __future__ import annotations

import sys

import unsloth  # noqa: F401 - before transformers and peft, as in the trainer
import torch
from transformers import AutoModelForCausalLM
from unsloth import FastLanguageModel


def main(parent: str) -> None:
    model, tok = FastLanguageModel.from_pretrained(model_name=parent, max_seq_length=256, dtype=None,
                                                   load_in_4bit=False)
    model = FastLanguageModel.get_peft_model(model, r=16, lora_alpha=32, lora_dropout=0.0, bias="none",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.02)  # an adapter that changes the output
    ids = tok("The capital of France is", return_tensors="pt").input_ids.to(model.device)
    base = AutoModelForCausalLM.from_pretrained(parent, dtype=model.dtype).to(model.device)
    with torch.no_grad():
        want = base(ids).logits.float()
        with model.disable_adapter():
            off = model(ids).logits.float()
        on = model(ids).logits.float()
    scale = want.abs().max().item()
    print(f"disable_adapter(): max |off - base| = {(off - want).abs().max().item() / scale:.2e} of the logits' range; "
          f"adapter on moves them {(on - want).abs().max().item() / scale:.2e}")
    print("disable_adapter() gives the base model" if (off - want).abs().max().item() < 0.02 * scale
          else "disable_adapter() does NOT give the base model: distillation would learn from the child itself")


if __name__ == "__main__":
    main(sys.argv[1])

"""The DPO stage of a generation: LoRA DPO of the SFT-merged folder on the new corrections, merged into a new folder.

SFT teaches the chosen answer; DPO also pushes the rejected one down. With LoRA and no reference model, TRL's
DPOTrainer scores the reference by disabling the adapter, so the reference is exactly the SFT model it starts from.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loop.errors import NothingToTrain, UserError
from loop.train.backends import load_model, lora_config
from loop.train.examples import json_lines
from loop.train.sft import Cancelled, _progress_callback, checkpointing, loss_ends
from loop.train.weights import save_atomically

__all__ = ["Cancelled", "read_pairs", "train_dpo"]


def _turns(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)


def read_pairs(pairs_path: Path) -> list[dict]:
    """The preference pairs in file order: {"prompt", "chosen", "rejected"}, all turn lists or all strings."""
    pairs = []
    for n, row in json_lines(pairs_path):
        fields = [row.get(k) for k in ("prompt", "chosen", "rejected")] if isinstance(row, dict) else [None]
        if not (all(_turns(v) for v in fields) or all(isinstance(v, str) and v for v in fields)):
            raise UserError(f"{pairs_path}:{n}: a pair needs 'prompt', 'chosen' and 'rejected', "
                            "all lists of turns or all text")
        pairs.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
    if len({isinstance(p["prompt"], str) for p in pairs}) > 1:
        raise UserError(f"{pairs_path}: mixes text pairs with conversational ones; use one format")
    return pairs


def make_dpo_trainer(model, tokenizer, pairs: list[dict], settings: dict, work_dir: Path, callbacks=(),
                     peft_config=None):
    """A DPOTrainer that logs every step, saves nothing on its own and, given a LoRA config, uses no ref model."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback
    from trl import DPOConfig, DPOTrainer

    on_gpu = torch.cuda.is_available()
    args = DPOConfig(
        output_dir=str(work_dir),
        max_steps=settings["dpo_steps"],
        per_device_train_batch_size=settings["batch_size"],
        gradient_accumulation_steps=settings["grad_accum"],
        learning_rate=settings["dpo_learning_rate"],
        lr_scheduler_type="constant",
        beta=settings["dpo_beta"],
        max_length=settings["max_length"],
        **checkpointing(DPOConfig, settings["gradient_checkpointing"]),  # TRL turns it on by default
        seed=settings["seed"],
        data_seed=settings["seed"],
        train_sampling_strategy="sequential",  # a few pairs: order does not matter, determinism does
        bf16=on_gpu and torch.cuda.is_bf16_supported(),  # TRL defaults bf16 on, even on the CPU
        fp16=False,
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=on_gpu,
    )
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(pairs),
                         processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def train_dpo(
    model_dir: Path,
    pairs_path: Path,
    out_dir: Path,
    settings: dict,
    on_progress: Callable[[dict], None] = lambda e: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """DPO of the fp32 folder model_dir on pairs_path with LoRA, merged into a new fp32 folder out_dir.

    Uses dpo_steps, dpo_beta and dpo_learning_rate, and SFT's batch_size, grad_accum, max_length, lora_*,
    gradient_checkpointing, threads and seed. margin_* are the mean reward margin (beta times how much more the
    policy prefers chosen over rejected than the reference does) at the first and last step.
    Raises Cancelled (nothing written) when should_stop() turns true, UserError for bad input.
    """
    import torch

    t_start = time.perf_counter()
    model_dir, pairs_path, out_dir = Path(model_dir), Path(pairs_path), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} already exists and is not empty")
    if settings.get("threads"):
        torch.set_num_threads(settings["threads"])
    if should_stop():
        raise Cancelled()
    pairs = read_pairs(pairs_path)
    if not pairs:
        raise UserError(f"no preference pairs in {pairs_path}")

    from datasets import disable_progress_bars
    from transformers import AutoTokenizer
    from transformers.utils.logging import disable_progress_bar

    disable_progress_bars()
    disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = load_model(model_dir)
    keep = {"use_cache": model.config.use_cache, "pad_token_id": model.config.pad_token_id}

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.trainer-", dir=out_dir.parent))
    try:
        progress = _progress_callback(on_progress, should_stop)
        trainer = make_dpo_trainer(model, tokenizer, pairs, settings, work_dir, [progress], lora_config(settings))
        if len(trainer.train_dataset) == 0:
            raise NothingToTrain(f"every pair's prompt is longer than train.max_length={settings['max_length']} "
                                 f"(raise it to train on them)")
        trainer.train()
        if progress.cancelled:
            raise Cancelled()
        steps = trainer.state.global_step
        margins = [h["rewards/margins"] for h in trainer.state.log_history if "rewards/margins" in h]
        merged = trainer.model.merge_and_unload().to(torch.float32)
        for key, value in keep.items():  # DPOTrainer sets a pad token on the model it trains
            setattr(merged.config, key, value)
        save_atomically(merged, AutoTokenizer.from_pretrained(model_dir), out_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    return {
        "steps": steps,
        **loss_ends(progress.losses),
        "margin_start": margins[0] if margins else None,
        "margin_end": margins[-1] if margins else None,
        "walltime_s": time.perf_counter() - t_start,
        "train_s": progress.train_s,
        "pairs": len(trainer.train_dataset),
    }

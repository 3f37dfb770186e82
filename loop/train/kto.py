"""The KTO stage of a generation: unpaired good and bad marks (a 👎 without a better answer, a KTO `label`),
trained with TRL's KTOTrainer as LoRA on the model so far, merged into a new folder.

DPO needs pairs; KTO learns from single answers labelled desirable or not. With LoRA and no reference model,
the reference is the model the stage starts from (the adapter disabled), as in the DPO stage.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loop.errors import UserError
from loop.train.backends import load_model, lora_config
from loop.train.examples import json_lines
from loop.train.sft import Cancelled, _progress_callback, checkpointing, loss_ends
from loop.train.weights import save_atomically

__all__ = ["Cancelled", "kto_classes", "read_rows", "train_kto"]


def kto_classes():
    """KTOTrainer and KTOConfig from where this TRL has them: `trl` (1.16) or `trl.experimental.kto` (earlier 1.x)."""
    try:
        from trl import KTOConfig, KTOTrainer
    except ImportError:
        from trl.experimental.kto import KTOConfig, KTOTrainer
    return KTOTrainer, KTOConfig


def read_rows(path: Path) -> list[dict]:
    rows = []
    for n, row in json_lines(path):
        if not (isinstance(row, dict) and isinstance(row.get("label"), bool) and isinstance(row.get("prompt"), list)
                and isinstance(row.get("completion"), list)):
            raise UserError(f"{path}:{n}: a KTO row needs 'prompt' and 'completion' (lists of turns) and a 'label'")
        rows.append({k: row[k] for k in ("prompt", "completion", "label")})
    return rows


def train_kto(model_dir: Path, rows_path: Path, out_dir: Path, settings: dict,
              on_progress: Callable[[dict], None] = lambda e: None,
              should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """KTO of the fp32 folder model_dir on rows_path with LoRA, merged into a new fp32 folder out_dir.

    Uses kto_steps, kto_beta, kto_learning_rate and SFT's batch_size, grad_accum, max_length, lora_*, seed.
    Raises Cancelled (nothing written) when should_stop() turns true, UserError for bad input.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, PrinterCallback, ProgressCallback

    t_start = time.perf_counter()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    rows = read_rows(Path(rows_path))
    labels = {r["label"] for r in rows}
    if labels != {True, False}:
        raise UserError(f"{rows_path}: KTO needs both desirable and undesirable answers")
    if settings.get("threads"):
        torch.set_num_threads(settings["threads"])
    if should_stop():
        raise Cancelled()
    trainer_cls, config_cls = kto_classes()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = load_model(model_dir)
    keep = {"use_cache": model.config.use_cache, "pad_token_id": model.config.pad_token_id}
    on_gpu = torch.cuda.is_available()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.trainer-", dir=out_dir.parent))
    try:
        progress = _progress_callback(on_progress, should_stop)
        n_bad = sum(not r["label"] for r in rows)
        args = config_cls(
            output_dir=str(work_dir), max_steps=settings["kto_steps"], per_device_train_batch_size=settings["batch_size"],
            gradient_accumulation_steps=settings["grad_accum"], learning_rate=settings["kto_learning_rate"],
            lr_scheduler_type="constant", beta=settings["kto_beta"], max_length=settings["max_length"],
            # KTO's advice: weigh the rarer kind up so both pull alike (desirable x n_good = undesirable x n_bad).
            desirable_weight=1.0, undesirable_weight=max(1.0, (len(rows) - n_bad) / max(n_bad, 1)),
            **checkpointing(config_cls, settings["gradient_checkpointing"]), seed=settings["seed"],
            data_seed=settings["seed"], bf16=on_gpu and torch.cuda.is_bf16_supported(), fp16=False, logging_steps=1,
            save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True, dataloader_pin_memory=on_gpu)
        trainer = trainer_cls(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(rows),
                              processing_class=tokenizer, peft_config=lora_config(settings), callbacks=[progress])
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.train()
        if progress.cancelled:
            raise Cancelled()
        merged = trainer.model.merge_and_unload().to(torch.float32)
        for key, value in keep.items():  # the trainer sets a pad token on the model it trains
            setattr(merged.config, key, value)
        save_atomically(merged, AutoTokenizer.from_pretrained(model_dir), out_dir)
        steps = trainer.state.global_step
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return {"steps": steps, "rows": len(rows), "undesirable": n_bad,
            **loss_ends(progress.losses), "walltime_s": time.perf_counter() - t_start}

"""Train one generation: LoRA SFT of a parent HF folder on a curriculum JSONL, merged into a new fp32 folder."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loop import faults
from loop.errors import UserError
from loop.train.backends import _load_unsloth, choose_backend, load_model, lora_config
from loop.train.distill import _distill_collator, _trainer_class
from loop.train.label_head import add_label_head
from loop.train.examples import prepare_examples
from loop.train.weights import cap_weight_change, merge_fp32, save_atomically


class Cancelled(Exception):
    """should_stop() asked the run to stop; nothing was written to out_dir."""


def loss_ends(losses: list[float]) -> dict[str, float | None]:
    """The loss at the start and at the end of a run: the mean of its first and of its last tenth of logged steps.

    One step's loss on one small batch swings with what that batch holds (a short conversation, a
    long tool call), so a first and a last single step can even show a falling loss as rising.
    """
    if not losses:
        return {"loss_start": None, "loss_end": None}
    k = max(1, len(losses) // 10)
    return {"loss_start": sum(losses[:k]) / k, "loss_end": sum(losses[-k:]) / k}


def _progress_callback(on_progress: Callable[[dict], None], should_stop: Callable[[], bool]):
    """A TrainerCallback that reports every optimizer step and asks the Trainer to stop when told to.

    Built inside a function so that importing this module does not import transformers.
    """
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.t0, self.cpu0 = time.perf_counter(), time.process_time()
            self.train_s = self.train_cpu_s = 0.0
            self.losses: list[float] = []
            self.cancelled = False

        def on_train_begin(self, args, state, control, **kw):
            self.t0, self.cpu0 = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            faults.point("train.step")
            self.train_s = time.perf_counter() - self.t0
            self.train_cpu_s = time.process_time() - self.cpu0  # steadier than wall time on a shared machine
            if should_stop():
                self.cancelled = control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "loss" not in logs:  # the end-of-training summary has "train_loss" instead
                return
            elapsed = time.perf_counter() - self.t0
            self.losses.append(float(logs["loss"]))
            on_progress({
                "step": state.global_step,
                "total": state.max_steps,
                "loss": float(logs["loss"]),
                "tokens_per_s": state.num_input_tokens_seen / elapsed if elapsed > 0 else 0.0,
                "elapsed_s": elapsed,
                "lr": float(logs.get("learning_rate", 0.0)),
            })

    return Progress()


def checkpointing(config_class, on: bool) -> dict[str, bool]:
    """TRL turns activation checkpointing on by default (~28 % slower here). transformers renamed the argument
    from gradient_checkpointing to activation_checkpointing; the GPU environment pins a version before that."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_class)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}


def make_trainer(
    model, tokenizer, examples: list[dict], settings: dict, work_dir: Path, callbacks=(), peft_config=None
):
    """An SFTTrainer that walks the examples in order, logs every step, and saves nothing on its own.

    With `distill_weight` > 0 and self-replay rows among the examples, those rows are trained
    by distillation from the parent instead of cross-entropy (distill_loss). The loss projects only the
    labelled positions through the LM head (label_head).
    """
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback
    from trl import SFTConfig

    on_gpu = torch.cuda.is_available()  # the Trainer moves the model there itself
    args = SFTConfig(
        output_dir=str(work_dir),
        max_steps=settings["steps"],
        per_device_train_batch_size=settings["batch_size"],
        gradient_accumulation_steps=settings["grad_accum"],
        learning_rate=settings["learning_rate"],
        lr_scheduler_type=settings["lr_scheduler"],
        warmup_steps=settings["warmup_steps"],
        max_length=settings["max_length"],
        **checkpointing(SFTConfig, settings["gradient_checkpointing"]),  # TRL turns it on by default: ~28% slower here
        seed=settings["seed"],
        data_seed=settings["seed"],
        train_sampling_strategy="sequential",  # rows come in curriculum order; the Trainer's default shuffles
        shuffle_dataset=False,
        packing=False,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),  # TRL defaults bf16 on, even on the CPU with fp32 weights
        fp16=False,
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=on_gpu,
        # Several processes (torchrun): gloo on the CPU; the Trainer picks NCCL on GPUs.
        ddp_backend="gloo" if not on_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
    )
    weight = float(settings.get("distill_weight") or 0.0)
    distill = weight > 0 and any(e.get("distill") for e in examples)
    if not distill:
        examples = [{k: v for k, v in e.items() if k != "distill"} for e in examples]
    # The loss reads the logits at the labelled positions only (label_head.py); Unsloth's model (already wrapped,
    # no peft_config) keeps its own forward.
    label_head = peft_config is not None and add_label_head(model)
    trainer = _trainer_class(weight if distill else 0.0, label_head)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks),
        **({"data_collator": _distill_collator(tokenizer)} if distill else {}),
    )
    if distill:
        # The Trainer drops dataset columns the model's forward() does not name; keep the flags.
        trainer._signature_columns = ["input_ids", "labels", "seq_lengths", "distill"]
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
    trainer.remove_callback(ProgressCallback)
    return trainer


def train_lora(
    parent_dir: Path,
    dataset_path: Path,
    out_dir: Path,
    settings: dict,
    on_progress: Callable[[dict], None] = lambda e: None,
    should_stop: Callable[[], bool] = lambda: False,
    sources_path: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune parent_dir on dataset_path with LoRA and write the merged fp32 child to out_dir.

    sources_path (the job's dataset_sources.jsonl) marks the self-replay rows that
    settings["distill_weight"] trains by distillation from the parent.

    walltime_s covers the whole call (load, train, merge, save); tokens_per_s, train_s and train_cpu_s (process
    CPU seconds) the training loop only.
    Raises Cancelled (nothing written) when should_stop() turns true, UserError for bad input.
    """
    import torch

    t_start = time.perf_counter()
    parent_dir, dataset_path, out_dir = Path(parent_dir), Path(dataset_path), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} already exists and is not empty")
    faults.point("train.start")
    backend = choose_backend(settings)
    if settings.get("threads"):
        torch.set_num_threads(settings["threads"])
    if should_stop():
        raise Cancelled()

    from datasets import disable_progress_bars
    from transformers import AutoTokenizer
    from transformers.utils.logging import disable_progress_bar

    disable_progress_bars()  # tqdm bars on stderr from dataset preparation, weight loading and saving
    disable_progress_bar()
    if backend == "unsloth":
        model, tokenizer = _load_unsloth(parent_dir, settings)
        peft_config = None
    else:
        model, peft_config = load_model(parent_dir), lora_config(settings)
        tokenizer = AutoTokenizer.from_pretrained(parent_dir)
    # The tokenizer that tokenizes is the one that collates (Unsloth may hand back its own, padding differently).
    examples = prepare_examples(tokenizer, dataset_path, settings["max_length"], sources_path)
    use_cache = model.config.use_cache

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.trainer-", dir=out_dir.parent))
    try:
        progress = _progress_callback(on_progress, should_stop)
        trainer = make_trainer(model, tokenizer, examples, settings, work_dir, [progress], peft_config)
        trainer.train()
        if progress.cancelled:
            raise Cancelled()
        trained_tokens = int(trainer.state.num_input_tokens_seen)
        steps = trainer.state.global_step
        faults.point("merge.start")
        moved = cap_weight_change(trainer.model, settings.get("max_weight_change") or 0.0)
        if int(os.environ.get("RANK", "0")) == 0:  # with several processes, one merges and saves
            # Unsloth trains a bf16 copy: merging there would round every weight of the fp32 parent (~2^-9
            # relative). The LoRA delta is merged into the fp32 parent instead.
            merged = merge_fp32(parent_dir, trainer.model, settings) if backend == "unsloth" else \
                trainer.model.merge_and_unload().to(torch.float32)
            merged.config.use_cache = use_cache
            # Save the parent's tokenizer as it was: TRL sets a pad token on the one it trained with.
            save_atomically(merged, AutoTokenizer.from_pretrained(parent_dir), out_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    return {
        "steps": steps,
        **loss_ends(progress.losses),
        "walltime_s": time.perf_counter() - t_start,
        "train_s": progress.train_s,
        "train_cpu_s": progress.train_cpu_s,
        "tokens_per_s": trained_tokens / progress.train_s if progress.train_s > 0 else 0.0,
        "trained_tokens": trained_tokens,
        "backend": backend,
        "distilled_rows": sum(e["distill"] for e in examples) if settings.get("distill_weight") else 0,
        "weight_change": moved["after"],
        "weight_change_trained": moved["before"],
        "peak_gpu_bytes": int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None,
    }

"""The baseline for the trainer's overhead: the same LoRA fine-tune as loop.train, as a bare PyTorch loop."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from peft import get_peft_model
from transformers import AutoTokenizer, get_scheduler, set_seed

from loop.train.backends import load_model, lora_config
from loop.train.examples import prepare_examples


def pad_batch(examples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right padding, as TRL's collator does: pad id in input_ids, -100 in labels, 0 in attention_mask."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def minimal_loop(parent_dir: Path, dataset_path: Path, settings: dict) -> dict:
    """Train for settings["steps"] optimizer steps; walltime_s and cpu_s count the loop only, not loading."""
    if settings.get("threads"):
        torch.set_num_threads(settings["threads"])
    set_seed(settings["seed"])
    tokenizer = AutoTokenizer.from_pretrained(parent_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = prepare_examples(tokenizer, Path(dataset_path), settings["max_length"])
    model = get_peft_model(load_model(Path(parent_dir)), lora_config(settings))
    if settings["gradient_checkpointing"]:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model.train()

    steps, bs, accum = settings["steps"], settings["batch_size"], settings["grad_accum"]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings["learning_rate"])
    scheduler = get_scheduler(settings["lr_scheduler"], optimizer, settings["warmup_steps"], steps)
    # Batches in file order, wrapping around like epochs, exactly as the sequential sampler feeds the trainer.
    batches = [examples[i : i + bs] for i in range(0, len(examples), bs)]

    tokens, b = 0, 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        for _ in range(accum):
            batch = pad_batch(batches[b % len(batches)], pad_id)
            b += 1
            tokens += int(batch["attention_mask"].sum())
            loss = model(**batch, use_cache=False).loss / accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the Trainer's default max_grad_norm
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    walltime, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    # cpu_s (process CPU seconds) is the steadier figure where other work shares the cores.
    return {"walltime_s": walltime, "s_per_step": walltime / steps, "tokens_per_s": tokens / walltime, "cpu_s": cpu}

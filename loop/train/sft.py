"""Train one generation: LoRA SFT of a parent HF folder on a curriculum JSONL, merged into a new fp32 folder."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loop.errors import UserError

# Rows with this source in dataset_sources.jsonl are the parent's own answers (loop/replay.py).
DISTILL_SOURCE = "self_replay"
# What "all-linear" means to Unsloth, which wants names: the projections of a Llama-style block.
LLAMA_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Cancelled(Exception):
    """should_stop() asked the run to stop; nothing was written to out_dir."""


def json_lines(path: Path):
    """(line number, object) for each non-empty line of a JSONL file; a bad line is a UserError naming it."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not JSON ({e.msg})") from None


def read_rows(dataset_path: Path) -> list[dict]:
    """The JSONL rows in file order; each is a chat ({"messages": [...]}) or a document ({"text": str})."""
    rows = []
    for n, row in json_lines(dataset_path):
        if not isinstance(row, dict) or not (
            isinstance(row.get("messages"), list) or isinstance(row.get("text"), str)
        ):
            raise UserError(f"{dataset_path}:{n}: a row needs a 'messages' list or a 'text' string")
        rows.append(row)
    return rows


def _prefix_len(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_row(tokenizer, row: dict, max_length: int) -> dict[str, list[int]]:
    """input_ids and labels (-100 where no loss) for one row, truncated to max_length from the end.

    Chats train on assistant turns only. TRL's assistant_only_loss needs {% generation %} markers, which plain
    ChatML (SmolLM2 and most small models) lacks, and TRL patches only templates it knows; so the labels are built
    here from the template itself: an assistant turn spans the tokens between rendering the chat up to it with a
    generation prompt and rendering it through that turn. That works for any prefix-preserving template and includes
    the end-of-turn token, so the model learns to stop.
    """
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    if "messages" in row:
        messages = row["messages"]
        full = ids(tokenizer.apply_chat_template(messages, tokenize=False))
        labels = [-100] * len(full)
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            before = ids(tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True))
            through = ids(tokenizer.apply_chat_template(messages[: i + 1], tokenize=False))
            start, end = _prefix_len(before, full), _prefix_len(through, full)
            labels[start:end] = full[start:end]
        input_ids = full
    else:
        # Documents as TRL treats them: the tokenizer's own special tokens, then EOS so the model learns to end.
        input_ids = tokenizer(row["text"])["input_ids"]
        if tokenizer.eos_token_id is not None and (not input_ids or input_ids[-1] != tokenizer.eos_token_id):
            input_ids = input_ids + [tokenizer.eos_token_id]
        labels = list(input_ids)
    return {"input_ids": input_ids[:max_length], "labels": labels[:max_length]}


def distill_flags(sources_path: Path | None, rows: int) -> list[int]:
    """1 for each row the parent wrote (self-replay), 0 for the rest, from the job's dataset_sources.jsonl."""
    if sources_path is None or not Path(sources_path).is_file():
        return [0] * rows
    flags = [int(s.get("source") == DISTILL_SOURCE) for _, s in json_lines(Path(sources_path))]
    if len(flags) != rows:
        raise UserError(f"{sources_path} has {len(flags)} rows for {rows} in the dataset; rebuild the job's dataset")
    return flags


def prepare_examples(tokenizer, dataset_path: Path, max_length: int,
                     sources_path: Path | None = None) -> list[dict[str, Any]]:
    """Tokenized rows in curriculum order; rows left with nothing to learn after truncation are dropped.

    Each example carries `distill`: 1 when the row is the parent's own answer (self-replay).
    """
    rows = read_rows(dataset_path)
    if not rows:
        raise UserError(f"no training examples in {dataset_path}")
    flags = distill_flags(sources_path, len(rows))
    examples = [tokenize_row(tokenizer, row, max_length) | {"distill": flag} for row, flag in zip(rows, flags)]
    examples = [e for e in examples if any(label != -100 for label in e["labels"])]
    if not examples:
        raise UserError(f"no training examples in {dataset_path} with an assistant turn within max_length={max_length}")
    return examples


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


def distill_loss(logits, parent_logits, labels, distill, weight: float):
    """Summed next-token loss of a batch and the number of tokens it covers.

    Ordinary rows: cross-entropy on their labels. Self-replay rows (distill == 1): the KL
    divergence from the parent's next-token distribution to the child's, at every token of
    the parent's answer, times `weight`. Copying the parent's greedy answer (cross-entropy)
    teaches only its top token, and sharpens its mistakes; matching its whole distribution
    keeps what it knew, uncertainty included, which is what self-replay is for.
    `parent_logits` holds the distill rows only, in batch order.
    """
    import torch
    import torch.nn.functional as F

    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != -100
    rows = distill.bool()
    ce_mask = mask & ~rows[:, None]
    total = logits.new_zeros(())
    if ce_mask.any():
        total = total + F.cross_entropy(logits[ce_mask], labels[ce_mask], reduction="sum")
    if rows.any():
        kl_mask = mask[rows]
        child = F.log_softmax(logits[rows][kl_mask], dim=-1)
        parent = F.log_softmax(parent_logits[:, :-1].float()[kl_mask], dim=-1)
        kl = (parent.exp() * (parent - child)).sum()
        total = total + weight * kl
    return total, int(mask.sum())


def _trainer_class(distill_weight: float):
    """SFTTrainer, or a subclass that distills the parent on self-replay rows (see distill_loss)."""
    from trl import SFTTrainer

    if not distill_weight:
        return SFTTrainer

    class DistillTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch

            distill = inputs.pop("distill")
            if not bool(distill.any()):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            ids, attention = inputs["input_ids"], inputs.get("attention_mask")
            rows = distill.bool()
            out = model(input_ids=ids, attention_mask=attention, use_cache=False)
            peft_model = self.accelerator.unwrap_model(model)
            # The parent is the child with its LoRA adapter switched off: no second model in memory.
            with torch.no_grad(), peft_model.disable_adapter():
                parent = model(input_ids=ids[rows], use_cache=False,
                               attention_mask=None if attention is None else attention[rows]).logits
            total, tokens = distill_loss(out.logits, parent, inputs["labels"], distill, distill_weight)
            loss = total / max(1, tokens if num_items_in_batch is None else int(num_items_in_batch))
            return (loss, out) if return_outputs else loss

    return DistillTrainer


def _distill_collator(tokenizer):
    """TRL's padding collator, plus the examples' distill flags as a tensor."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    base = DataCollatorForLanguageModeling(pad_token_id=pad)

    def collate(examples: list[dict]) -> dict:
        batch = base([{k: v for k, v in e.items() if k != "distill"} for e in examples])
        batch["distill"] = torch.tensor([int(e.get("distill", 0)) for e in examples])
        return batch

    return collate


def make_trainer(
    model, tokenizer, examples: list[dict], settings: dict, work_dir: Path, callbacks=(), peft_config=None
):
    """An SFTTrainer that walks the examples in order, logs every step, and saves nothing on its own.

    With `distill_weight` > 0 and self-replay rows among the examples, those rows are trained
    by distillation from the parent instead of cross-entropy (distill_loss).
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
        activation_checkpointing=settings["gradient_checkpointing"],  # TRL turns it on by default: ~28% slower here
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
    )
    weight = float(settings.get("distill_weight") or 0.0)
    distill = weight > 0 and any(e.get("distill") for e in examples)
    if not distill:
        examples = [{k: v for k, v in e.items() if k != "distill"} for e in examples]
    trainer = _trainer_class(weight if distill else 0.0)(
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


def _save_atomically(model, tokenizer, out_dir: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.saving-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a generation folder is an ordinary one
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():
            out_dir.rmdir()  # only an empty folder may stand in the way (checked before training)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    tokenizer = AutoTokenizer.from_pretrained(parent_dir)
    examples = prepare_examples(tokenizer, dataset_path, settings["max_length"], sources_path)
    if backend == "unsloth":
        model, tokenizer = _load_unsloth(parent_dir, settings)
        peft_config = None
    else:
        model, peft_config = load_model(parent_dir), lora_config(settings)
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
        moved = cap_weight_change(trainer.model, settings.get("max_weight_change") or 0.0)
        merged = trainer.model.merge_and_unload().to(torch.float32)
        merged.config.use_cache = use_cache
        # Save the parent's tokenizer as it was: TRL sets a pad token on the one it trained with.
        _save_atomically(merged, AutoTokenizer.from_pretrained(parent_dir), out_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    return {
        "steps": steps,
        "loss_start": progress.losses[0] if progress.losses else None,
        "loss_end": progress.losses[-1] if progress.losses else None,
        "walltime_s": time.perf_counter() - t_start,
        "train_s": progress.train_s,
        "train_cpu_s": progress.train_cpu_s,
        "tokens_per_s": trained_tokens / progress.train_s if progress.train_s > 0 else 0.0,
        "trained_tokens": trained_tokens,
        "backend": backend,
        "distilled_rows": sum(e["distill"] for e in examples) if settings.get("distill_weight") else 0,
        "weight_change": moved["after"],
        "weight_change_trained": moved["before"],
    }

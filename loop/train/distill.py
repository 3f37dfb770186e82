"""Self-replay rows trained by distillation: the child matches the parent's next-token distribution.

The parent is the child with its LoRA adapter switched off, so no second model is loaded.
"""

from __future__ import annotations


def distill_loss(logits, parent_logits, labels, distill, weight: float):
    """Summed next-token loss of a batch and the number of tokens it covers.

    Ordinary rows: cross-entropy on their labels. Self-replay rows (distill == 1): the KL
    divergence from the parent's next-token distribution to the child's, at every token of
    the parent's answer, times `weight`. Copying the parent's greedy answer (cross-entropy)
    teaches only its top token, and sharpens its mistakes; matching its whole distribution
    keeps what it knew, uncertainty included, which is what self-replay is for.
    `parent_logits` holds the distill rows only, in batch order.
    """
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

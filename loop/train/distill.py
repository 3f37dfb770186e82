"""The training loss: cross-entropy at the labelled positions, and self-replay rows trained by distillation
(the child matches the parent's next-token distribution).

The parent is the child with its LoRA adapter switched off, so no second model is loaded.
"""

from __future__ import annotations


def distill_loss(logits, mask, parent_logits, labels, distill, weight: float):
    """Summed next-token loss of a batch and the number of tokens it covers.

    `logits` are the child's at the labelled positions only ([N, vocab], in row order, `mask` [batch, seq - 1]
    says where: label_head.add_label_head); `parent_logits` the parent's at the labelled positions of the
    self-replay rows (distill == 1), in the same order. Ordinary rows: cross-entropy on their labels. Self-replay
    rows: the KL divergence from the parent's next-token distribution to the child's, at every token of the
    parent's answer, times `weight`. Copying the parent's greedy answer (cross-entropy) teaches only its top
    token, and sharpens its mistakes; matching its whole distribution keeps what it knew, uncertainty included,
    which is what self-replay is for.
    """
    import torch.nn.functional as F

    targets = labels[:, 1:][mask]
    replayed = distill.bool()[:, None].expand_as(mask)[mask]  # each labelled position: is its row self-replay?
    logits = logits.float()
    total = logits.new_zeros(())
    if (~replayed).any():
        total = total + F.cross_entropy(logits[~replayed], targets[~replayed], reduction="sum")
    if replayed.any():
        child = F.log_softmax(logits[replayed], dim=-1)
        parent = F.log_softmax(parent_logits.float(), dim=-1)
        total = total + weight * (parent.exp() * (parent - child)).sum()
    return total, int(mask.sum())


def _trainer_class(distill_weight: float, label_head: bool):
    """SFTTrainer, or a subclass whose loss reads the logits at the labelled positions only (label_head) and
    distills the parent on self-replay rows (distill_loss)."""
    from trl import SFTTrainer

    if not (distill_weight or label_head):
        return SFTTrainer

    class LabelTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch

            distill = inputs.pop("distill", None)
            rows = None if distill is None or not distill_weight else distill.bool().to(inputs["input_ids"].device)
            if return_outputs or (not label_head and (rows is None or not bool(rows.any()))):
                # SFTTrainer's own loss: evaluation (never run here), and batches without self-replay on a
                # model without the label head (Unsloth's).
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            ids, attention, labels = inputs["input_ids"], inputs.get("attention_mask"), inputs["labels"]
            if rows is None:
                rows = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
            logits, mask = _at_labels(model, ids, attention, labels, label_head)
            parent = None
            if bool(rows.any()):
                peft_model = self.accelerator.unwrap_model(model)
                # The parent is the child with its LoRA adapter switched off: no second model in memory.
                with torch.no_grad(), peft_model.disable_adapter():
                    parent, _ = _at_labels(model, ids[rows], None if attention is None else attention[rows],
                                           labels[rows], label_head)
            total, tokens = distill_loss(logits, mask, parent, labels, rows, distill_weight)
            loss = total / max(1, tokens if num_items_in_batch is None else int(num_items_in_batch))
            # As SFTTrainer does: the Trainer counts the tokens of every process, and DDP averages the gradients.
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return loss

    return LabelTrainer


def _at_labels(model, ids, attention, labels, label_head: bool):
    """(the logits at the labelled positions, where they are): through the label head, or cut from the whole."""
    if label_head:
        return model(input_ids=ids, attention_mask=attention, labels=labels, label_logits=True)
    mask = labels[:, 1:] != -100
    return model(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, :-1][mask], mask


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

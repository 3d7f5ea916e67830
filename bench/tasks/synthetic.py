"""Synthetic causal-LM task: random token ids, made on the device once and cycled.
Memory and step time depend on shapes, not on token values, so nothing has to be downloaded.

By default every example is `seq_len` tokens (a full batch, no padding). With `min_seq_len` > 0 each example's
length is drawn from [min_seq_len, seq_len], as in an instruction-tuning set, and a batch is padded to its
longest example (attention mask, pad labels -100). With `packing` the same examples are concatenated into one
padding-free row (transformers' DataCollatorWithFlattening: position ids restart at each example, the label
of each example's first token is -100), so a packed and a padded step hold the same examples, the same real
tokens and the same loss terms: only the padding's compute and memory differ.
"""
from __future__ import annotations

import itertools
from typing import Iterator

import torch

DISTINCT_BATCHES = 4
PAD_ID = 0  # masked out, and its labels are -100: the value never reaches the loss


def batches(vocab_size: int, batch_size: int, seq_len: int, device: str, seed: int, min_seq_len: int = 0,
            packing: bool = False) -> Iterator[dict]:
    generator = torch.Generator().manual_seed(seed)
    made = []
    for _ in range(DISTINCT_BATCHES):
        if not min_seq_len and not packing:  # the original full batch (same ids for the same seed)
            ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)
            batch = {"input_ids": ids, "labels": ids}
        else:
            low = min_seq_len or seq_len
            lengths = torch.randint(low, seq_len + 1, (batch_size,), generator=generator).tolist()
            examples = [torch.randint(0, vocab_size, (n,), generator=generator) for n in lengths]
            batch = packed(examples) if packing else padded(examples)
        made.append({k: v.to(device) for k, v in batch.items()})
    return itertools.cycle(made)


def padded(examples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right-padded to the longest example: input_ids, attention_mask, labels (-100 on padding)."""
    longest = max(len(e) for e in examples)
    ids = torch.full((len(examples), longest), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for row, example in enumerate(examples):
        ids[row, :len(example)] = example
        mask[row, :len(example)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def packed(examples: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """One row [1, total tokens]: input_ids, position_ids (restarting per example), labels; no attention mask
    (transformers reads the example boundaries from the position ids)."""
    from transformers import DataCollatorWithFlattening

    collate = DataCollatorWithFlattening(return_tensors="pt")
    return dict(collate([{"input_ids": e.tolist()} for e in examples]))

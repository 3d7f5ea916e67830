"""Synthetic causal-LM task: random token ids of a fixed batch x seq_len, made on the device once.
Memory and step time depend on shapes, not on token values, so nothing has to be downloaded."""
from __future__ import annotations

import itertools
from typing import Iterator

import torch

DISTINCT_BATCHES = 4


def batches(vocab_size: int, batch_size: int, seq_len: int, device: str, seed: int) -> Iterator[dict]:
    generator = torch.Generator().manual_seed(seed)
    made = []
    for _ in range(DISTINCT_BATCHES):
        ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator).to(device)
        made.append({"input_ids": ids, "labels": ids})
    return itertools.cycle(made)

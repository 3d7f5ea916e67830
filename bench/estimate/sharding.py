"""FSDP's per-rank share of a prediction (parallel=fsdp on a random-init model: bench.cell.distributed.shards_on_meta).

Each rank builds the model on the meta device, shards it (FSDP2 `fully_shard` per decoder layer, then the
root) and materialises its own shards only, so per rank:
  weights, optimizer states, the optimizer step's temporaries and the gradients (reduce-scattered) are
  1/N of the whole; on top of that FSDP holds parameters unsharded while they are used: the root's own
  (embeddings, final norm, LM head: the root is not resharded between forward and backward), the decoder
  layer in use and the next one, prefetched (2 x the largest layer), and during backward one layer's
  unsharded gradients before they are reduce-scattered;
  activations are not sharded (each rank runs its own batch), nor are autocast's 16-bit copies of the
  gathered weights (saved for backward) or the LM head's gradient, made whole before its reduce-scatter.
Not modelled: all-gather / reduce-scatter staging buffers. All of it is read from torch's FSDP2 design, not
measured on GPUs.
Pretrained weights (and DDP) load the whole model on every rank: N = 1 here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.estimate.inventory import Inventory

LAYER = re.compile(r"\.(?:layers?|h|blocks?)\.(\d+)\.")


def world_size(cfg: Any) -> int:
    """N the state is divided by: nproc for a meta-sharded FSDP cell, else 1."""
    from bench.cell.distributed import shards_on_meta

    return max(int(getattr(cfg, "nproc", 1)), 1) if shards_on_meta(cfg) else 1


@dataclass
class Share:
    n: int
    gathered_weights: int  # the root's own parameters + 2 x the largest layer, unsharded
    layer_gradients: int  # one layer's unsharded trainable gradients

    def part(self, value: int | float) -> int:
        return -(-int(value) // self.n)  # ceil: FSDP pads dim 0 to a multiple of N

    def note(self) -> str:
        return (f"fsdp: per rank of {self.n}; weights, gradients and optimizer states are 1/{self.n} (each rank "
                f"materialises its own shards) plus {self.gathered_weights / 1e9:.2f} GB gathered (the root's "
                f"embeddings, norm and head, two decoder layers) and {self.layer_gradients / 1e9:.2f} GB of one "
                f"layer's unsharded gradients; activations are per rank (not sharded)")


def share(cfg: Any, inv: Inventory) -> Share | None:
    """This cell's sharing, or None when each rank holds the whole model."""
    n = world_size(cfg)
    if n <= 1:
        return None
    weights: dict[int, int] = {}
    grads: dict[int, int] = {}
    root = 0
    for r in inv.rows:
        found = LAYER.search(r.name)
        size = int(r.numel * r.element_bytes)
        if not found:
            root += size
            continue
        layer = int(found.group(1))
        weights[layer] = weights.get(layer, 0) + size
        if r.trainable:
            grads[layer] = grads.get(layer, 0) + size
    return Share(n=n, gathered_weights=root + 2 * max(weights.values(), default=0),
                 layer_gradients=max(grads.values(), default=0))

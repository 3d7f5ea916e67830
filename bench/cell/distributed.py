"""Several processes for one cell (parallel=fsdp | ddp): what each rank does inside bench.cell.runner.

bench.launch.launcher starts `torchrun --standalone --nproc_per_node N -m bench.launch.worker CFG.json`; every rank runs
the same cell. Each rank joins the process group (NCCL on its own GPU, LOCAL_RANK; gloo on CPU), plans on
the meta device, builds the model and applies the method, counts the parameters (the logical totals, before
anything is sharded), then wraps: FSDP2 `fully_shard` on every module whose class name ends in
"DecoderLayer" and then on the root, or DistributedDataParallel. The optimizer is made after wrapping, so
with FSDP it holds only this rank's shards.
Loading: FSDP on a random-init model (shards_on_meta) builds, wraps (adapters too) and shards on the meta
device, then materialize_shards gives this rank storage and random values for its own shards only, so no
rank ever holds the whole model. Pretrained weights (and DDP, which needs them all) are built whole on
every rank as one process does, then wrapped. The record's `distributed.load` says which.

Each rank trains on its own synthetic batches (seed + rank) and measures its own memory and step times.
At the end every rank's figures are gathered (all_gather_object) and rank 0 alone writes the record:
the memory block of the rank with the highest peak (memory.peak_bytes is the max over ranks), rank 0's
timing with every rank's samples and tokens (global batch = batch_size x world size), and `distributed`
with each rank's peak and steps/s. Other ranks write nothing.

A rank that fails (out of memory, an exception) can't wait for the others, which may be blocked in a
collective it will never join: it writes the record itself, its error prefixed "rank r of N", and exits
at once, so torchrun stops the rest. The first rank to fail claims the record (an O_EXCL file the launcher
names in BENCH_CELL_CLAIM), so a peer's later "connection closed" never hides the cause.

With parallel set and no WORLD_SIZE (isolate=never, nproc=1) the cell is a world of one in this process.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from bench.record import CLAIM_ENV


@dataclass
class World:
    rank: int
    local_rank: int
    size: int
    parallel: str  # fsdp | ddp
    backend: str  # nccl | gloo
    device: str


def start(cfg: Any, device: str) -> World | None:
    """Join the process group when parallel != none (None otherwise: the single-process cell)."""
    if cfg.parallel == "none":
        return None
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", 0))
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(local)
    if "WORLD_SIZE" in os.environ:  # torchrun: rank, world size and rendezvous in the environment
        extra = {"device_id": torch.device("cuda", local)} if device == "cuda" else {}
        dist.init_process_group(backend, **extra)
    else:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    return World(dist.get_rank(), local, dist.get_world_size(), cfg.parallel, backend, device)


def close(world: World | None) -> None:
    import torch.distributed as dist

    if world is not None and dist.is_initialized():
        dist.destroy_process_group()


def rank(world: World | None) -> int:
    return world.rank if world else 0


def cuda_index(world: World | None) -> int:
    return world.local_rank if world else 0


def parallelize(model: Any, world: World | None) -> Any:
    """FSDP2 per decoder layer then the root (on the meta device too), or DDP; the model as it is for one process."""
    if world is None:
        return model
    if world.parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [world.local_rank] if world.device == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for module in [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]:
        fully_shard(module)
    fully_shard(model)
    return model


def shards_on_meta(cfg: Any) -> bool:
    """parallel=fsdp on a random-init 16/32-bit model: built, wrapped and sharded on the meta device, then
    each rank materialises only its own shards (pretrained weights are loaded whole, then sharded)."""
    return cfg.parallel == "fsdp" and not cfg.model.pretrained and cfg.method.base_bits >= 16


def materialize_shards(model: Any, device: str, std: float, seed: int) -> None:
    """Give a model sharded on the meta device storage for this rank's shards only (to_empty), random values
    by bench.cell.models.init_rule (LoRA's B zeros, A as peft makes it; `seed` differs per rank), and rotary
    embeddings rebuilt on the device. Gradient checkpointing set on the meta model stays set."""
    import torch
    from torch.distributed.tensor import DTensor

    from bench.cell import models

    model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            local = param.to_local() if isinstance(param, DTensor) else param
            fan_in = param.shape[1] if param.dim() >= 2 else None  # the whole weight's shape
            models.fill_random_(local, models.init_rule(name, param.dim()), std, fan_in, generator)
    models.rebuild_rotary(model, device)
    left = [name for name, t in model.named_buffers() if t.device.type == "meta"]
    if left:
        raise RuntimeError(f"materialising the shards left buffers on the meta device: {left[:5]}")


def local_state(model: Any, loaded: str) -> dict[str, Any]:
    """This rank's part, for the record: bytes of the parameters it holds (its FSDP shards, or the whole
    model), how it loaded, and whether activation checkpointing is on in the model itself."""
    from torch.distributed.tensor import DTensor

    held = 0
    for param in model.parameters():
        local = param.to_local() if isinstance(param, DTensor) else param
        held += local.numel() * local.element_size()
    checkpointing = any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())
    return {"local_param_bytes": held, "load": loaded, "activation_checkpointing": checkpointing}


def annotate_preflight(preflight: dict[str, Any] | None, world: World | None, cfg: Any) -> None:
    """Say what the per-process estimate covers (with FSDP a does-not-fit estimate does not refuse)."""
    if world is None or preflight is None:
        return
    if world.parallel == "ddp":
        note = ("estimate is per process; DDP's gradient buckets (about one more copy of the trainable "
                "gradients) are not included")
    elif shards_on_meta(cfg):
        note = "estimate is per rank (sharded, see the fsdp note); with fsdp it does not refuse the cell"
    else:
        note = ("estimate assumes one process holds the whole model (pretrained weights load whole before "
                "sharding; not shard-aware); with fsdp it does not refuse the cell")
    preflight.setdefault("notes", []).append(note)


def refuses(world: World | None, preflight: dict[str, Any]) -> bool:
    return preflight["fits"] is False and not (world and world.parallel == "fsdp")


def agree(world: World | None, skip: dict[str, Any] | None) -> dict[str, Any] | None:
    """Every rank skips (busy GPU, does not fit) or none does: the lowest rank's reason wins."""
    if world is None or world.size == 1:
        return skip
    import torch.distributed as dist

    reasons: list[Any] = [None] * world.size
    dist.all_gather_object(reasons, skip)
    return next((r for r in reasons if r), None)


def info(world: World, batch_size: int, **extra: Any) -> dict[str, Any]:
    return {"world_size": world.size, "parallel": world.parallel, "backend": world.backend,
            "global_batch_size": batch_size * world.size, "memory_rank": world.rank, "per_rank": [],
            "failed_rank": None, "load": None, "activation_checkpointing": None, **extra}


def fail_now(world: World, record: dict[str, Any], path: Any) -> None:
    """A failed rank of several: write the record if no rank failed before it, then exit without waiting for
    peers. A world of one goes on as a single process does (merge, then the record is written)."""
    from bench.record import write_record

    if world.size == 1:
        return

    claim = os.environ.get(CLAIM_ENV)
    first = True
    if claim:
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            first = False
    if first:
        error = record.get("error") or {"type": "Failed", "message": ""}
        error["message"] = f"rank {world.rank} of {world.size}: {error.get('message', '')}"
        local = record.get("distributed") or {}
        record["distributed"] = info(world, record["config"]["train"]["batch_size"], failed_rank=world.rank,
                                     load=local.get("load"),
                                     activation_checkpointing=local.get("activation_checkpointing"))
        write_record(record, path)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def merge(world: World, record: dict[str, Any]) -> bool:
    """Gather every rank's figures; on rank 0 fold them into `record`. True on the rank that writes.
    Each tracker's section is folded by the tracker itself (bench.trackers.base.Tracker.merge_ranks)."""
    import torch.distributed as dist

    from bench.trackers import tracker_classes

    trackers = tracker_classes()
    mine = {"rank": world.rank, "local": record.get("distributed") or {},  # measure's local_state, if any
            **{t.section: record.get(t.section) for t in trackers}}
    ranks: list[Any] = [None] * world.size
    dist.all_gather_object(ranks, mine)
    if world.rank != 0:
        return False
    failed = world.rank if record["status"] in ("oom", "failed") else None  # a world of one
    local = ranks[0]["local"]
    record["distributed"] = info(world, record["config"]["train"]["batch_size"], failed_rank=failed,
                                 load=local.get("load"), activation_checkpointing=local.get("activation_checkpointing"))
    per_rank = record["distributed"]["per_rank"]
    for r in ranks:
        per_rank.append({"rank": r["rank"], "peak_bytes": (r["memory"] or {}).get("peak_bytes"),
                         "steps_per_s": (r["timing"] or {}).get("steps_per_s"),
                         "local_param_bytes": r["local"].get("local_param_bytes")})
    for tracker in trackers:
        record[tracker.section] = tracker.merge_ranks([r[tracker.section] for r in ranks])
    if "rank" in (record.get("memory") or {}):  # the memory block came from that rank (highest peak)
        record["distributed"]["memory_rank"] = record["memory"]["rank"]
    return True

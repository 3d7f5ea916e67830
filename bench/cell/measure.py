"""The measured part of a cell: load (tracked), train in segments (tracked), evaluate between them (tracked
apart), and fill the record's params / timing / energy / memory / quality. Failure is data: any exception
after planning becomes the record's status (oom or failed) with its error."""
from __future__ import annotations

import traceback
from typing import Any

from bench import methods
from bench.config import ConfigError, RunConfig
from bench.record import cell_name


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text.lower() or "can't allocate memory" in text)


def progress_bar(total: int, label: str) -> Any:
    """tqdm over the steps of a long cell, on a terminal only (stderr; refreshed at most twice a second)."""
    import sys

    if total < 50 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="step", mininterval=0.5, leave=False)


def inject_fault(fault: str) -> None:
    """fault=raise | sigkill | hang: lets the sweep tests show that a crash, a kill or an interrupt of a
    running cell (hang: it waits, after loading, until stopped) still ends as a record."""
    if fault == "hang":
        import sys
        import time

        print("bench: fault=hang: the cell waits until it is stopped", file=sys.stderr, flush=True)
        while True:
            time.sleep(1)
    if fault == "raise":
        raise RuntimeError("injected fault (fault=raise)")
    if fault == "sigkill":
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def measure(cfg: RunConfig, device: str, planned: dict[str, Any], record: dict[str, Any],
            world: Any = None) -> None:
    """`world`: bench.cell.distributed's World for a parallel cell (this rank's part), None for one process."""
    import torch

    from bench.cell import distributed

    from bench.cell import models

    from bench.tasks import quality
    from bench.tasks import synthetic
    from bench.cell.step_loop import StepLoop, optimizer_state_bytes
    from bench.trackers.base import Trackers
    from bench.trackers.energy import EnergyMeter
    from bench.trackers.memory import MemoryTracker
    from bench.trackers.params import count_parameters
    from bench.trackers.timing import TimingTracker

    method = methods.get(cfg.method.name)
    t, task = cfg.train, cfg.task
    memory = (MemoryTracker(device, cfg.sample_interval_ms, distributed.cuda_index(world),
                            rss_interval_ms=cfg.rss_sample_interval_ms) if cfg.trackers else None)
    energy = EnergyMeter(memory.handle) if memory and device == "cuda" else None
    # timing always (without trackers, from the measured region's total time); each fills its record section
    trackers = Trackers([x for x in (memory, TimingTracker(t.warmup_steps, t.step_clock), energy) if x is not None])
    phase = trackers.phase
    torch.manual_seed(t.seed + cfg.repeat)  # each repeat its own initialisation, dropout and batches
    trackers.start()
    try:
        with phase("load"):
            meta = world is not None and distributed.shards_on_meta(cfg)  # FSDP: only this rank's shards made
            model = models.build_model(cfg, device, planned["weights_dtype"], meta=meta, **quality.task_head(task))
            model = method.wrap(model, cfg)
            record["params"] = count_parameters(model)  # logical totals, before any sharding
            vocab_size = getattr(model.config, "vocab_size", None)
            std = float(getattr(model.config, "initializer_range", 0.02))
            model = distributed.parallelize(model, world)  # FSDP2 / DDP; as it is for one process
            if meta:
                distributed.materialize_shards(model, device, std, t.seed + distributed.rank(world))
            if world is not None:
                record["distributed"] = distributed.local_state(model, "meta_sharded" if meta else "whole_model")
            optimizer = method.make_optimizer(model, cfg)
        inject_fault(cfg.fault)
        autocast = method.autocast_dtype(cfg, planned["compute"])
        text_task, log = None, None
        if task.kind == "synthetic":
            seed = t.seed + cfg.repeat + distributed.rank(world)  # each rank (and repeat) its own batches
            batches = synthetic.batches(vocab_size, t.batch_size, t.seq_len, device, seed, task.min_seq_len,
                                        task.packing)
        else:
            with phase("data"):  # tokenisation, before anything is timed
                text_task = quality.prepare(cfg, models.load_tokenizer(cfg.model), device, autocast)
            batches = text_task.train_batches
            log = quality.QualityLog(task, text_task.main_metric)
            record["data"] = {"train_examples": text_task.n_train_examples,
                              "train_features": text_task.n_train_features}
        loop = StepLoop(model, optimizer, batches, warmup_steps=t.warmup_steps, grad_accum=t.grad_accum,
                        device=device, autocast_dtype=autocast, per_step_timing=cfg.trackers, step_clock=t.step_clock,
                        on_measure_start=energy.resume if energy else None,
                        on_measure_end=energy.pause if energy else None)
        every = task.eval_every if text_task and task.eval_every else t.steps
        if text_task and task.eval_every:
            with phase("eval"):
                log.evaluate(text_task, model, 0, 0.0)
        bar = progress_bar(t.steps, cell_name(record["cell"]))
        while loop.step < t.steps:
            with phase("train"):
                loop.run(min(every, t.steps - loop.step), bar)
            if text_task:
                with phase("eval"):
                    log.evaluate(text_task, model, loop.step, loop.train_seconds)
        if bar is not None:
            bar.close()
        if t.until_ci and text_task is None:  # the measured window: on until the interval is narrow enough
            with phase("train"):
                loop.measure_until_ci(t.until_ci, t.max_measure_s, t.max_measure_steps)
        result = loop.result()
        record["losses"] = result.losses
        record["state_bytes"] = {"gradients": loop.gradient_bytes, "optimizer": optimizer_state_bytes(optimizer)}
        trackers.trained(result)
        record["quality"] = log.summary() if log else None
        record["status"] = "success"
    except ConfigError:
        raise
    except Exception as exc:  # failure is data
        record["status"] = "oom" if is_oom(exc) else "failed"
        record["error"] = {"type": type(exc).__name__, "message": str(exc)[:2000],
                           "traceback": traceback.format_exc(limit=8)[-4000:]}
    finally:
        trackers.stop()
        trackers.fill(record)  # memory even for a failed cell; timing and energy once training ended

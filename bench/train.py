"""The training step loop. Warm-up steps run first and are not timed; each measured step is timed with the
device synchronised before the clock is read. With trackers off it is the bare loop: one sync and two
clock reads around all measured steps, losses read once at the end."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from bench.trackers.timing import StepTimer


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)  # measured steps, trackers on
    measured_seconds: float = 0.0
    measured_steps: int = 0


def synchronizer(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def train_steps(model: torch.nn.Module, optimizer: Any, batches: Iterator[dict], *, steps: int,
                warmup_steps: int, grad_accum: int, device: str, autocast_dtype: torch.dtype | None,
                per_step_timing: bool = True, on_measure_start: Callable[[], None] | None = None,
                on_measure_end: Callable[[], None] | None = None) -> TrainResult:
    model.train()
    sync = synchronizer(device)
    timer = StepTimer(sync) if per_step_timing else None
    amp = (lambda: torch.autocast(device_type=device, dtype=autocast_dtype)) if autocast_dtype \
        else contextlib.nullcontext
    losses: list[torch.Tensor] = []
    result = TrainResult()
    started = 0.0
    for step in range(steps):
        if step == warmup_steps:
            sync()
            if on_measure_start:
                on_measure_start()
            started = time.perf_counter()
        if timer and step >= warmup_steps:
            timer.begin()
        step_loss = None
        for _ in range(grad_accum):
            batch = next(batches)
            with amp():
                loss = model(**batch).loss / grad_accum
            loss.backward()
            step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        if timer and step >= warmup_steps:
            timer.end()
    sync()
    result.measured_seconds = time.perf_counter() - started
    if on_measure_end:
        on_measure_end()
    result.measured_steps = steps - warmup_steps
    result.step_times = timer.step_times if timer else []
    result.losses = torch.stack(losses).float().cpu().tolist()
    return result

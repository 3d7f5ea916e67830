"""The training step loop. Warm-up steps run first and are left out of the rates; each step is timed
(bench.trackers.timing.StepTimer: the device synchronised before the clock is read, or CUDA events with
`train.step_clock=events`), warm-up steps apart for the one-off costs they hold. With trackers off it is
the bare loop: one sync and two clock reads around each run of measured steps, losses read once at the end.

A StepLoop can run in segments (train a while, evaluate, train on): the clocks cover only the training
segments, so evaluation never counts as training time. `measure_until_ci` runs on after the fixed steps
until the steps/s interval is narrow enough or a cap is reached (the synthetic task only: a quality run
trains a fixed number of steps).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from bench import stats
from bench.config import ConfigError
from bench.trackers.timing import StepTimer


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)  # measured steps, trackers on
    warmup_step_times: list[float] = field(default_factory=list)  # warm-up steps, trackers on
    measured_seconds: float = 0.0  # post-warm-up training time
    measured_steps: int = 0
    train_seconds: float = 0.0  # all training segments, warm-up included (time-to-quality clock)
    measured_samples: int = 0
    measured_tokens: int = 0  # non-padding tokens (attention mask) of the measured steps
    stop_reason: str = "fixed steps"  # why measuring stopped (measure_until_ci)


def synchronizer(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def event_factory(device: str, step_clock: str) -> Callable[[], Any] | None:
    """Timing-enabled CUDA events for step_clock=events (refused off CUDA before the cell starts)."""
    if step_clock != "events":
        return None
    if device != "cuda":
        raise ConfigError(f"train.step_clock=events needs CUDA (device is {device}); use train.step_clock=sync")
    return lambda: torch.cuda.Event(enable_timing=True)


class StepLoop:
    def __init__(self, model: torch.nn.Module, optimizer: Any, batches: Iterator[dict], *, warmup_steps: int,
                 grad_accum: int, device: str, autocast_dtype: torch.dtype | None, per_step_timing: bool = True,
                 step_clock: str = "sync", on_measure_start: Callable[[], None] | None = None,
                 on_measure_end: Callable[[], None] | None = None) -> None:
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.warmup_steps, self.grad_accum = warmup_steps, grad_accum
        self.sync = synchronizer(device)
        self.timer = StepTimer(self.sync, event_factory(device, step_clock)) if per_step_timing else None
        self.stop_reason = "fixed steps"
        self.amp = (lambda: torch.autocast(device_type=device, dtype=autocast_dtype)) if autocast_dtype \
            else contextlib.nullcontext
        self.on_measure_start, self.on_measure_end = on_measure_start, on_measure_end
        self.step = 0
        self._losses: list[torch.Tensor] = []
        self.measured_seconds = 0.0
        self.train_seconds = 0.0
        self._samples: torch.Tensor | int = 0  # summed on the device, as the tokens
        self._tokens: torch.Tensor | int = 0  # summed on the device: no sync per step
        self.gradient_bytes: int | None = None  # read once, before the last warm-up step's optimizer step

    def _one_step(self, measured: bool) -> None:
        step_loss = None
        for _ in range(self.grad_accum):
            batch = next(self.batches)
            if measured:
                ids = batch["input_ids"]
                positions = batch.get("position_ids")  # a packed row: one example per position id 0
                self._samples = self._samples + (ids.shape[0] if positions is None else (positions == 0).sum())
                mask = batch.get("attention_mask")
                self._tokens = self._tokens + (mask.sum() if mask is not None else ids.numel())
            with self.amp():
                loss = self.model(**batch).loss / self.grad_accum
            loss.backward()
            step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
        if self.step == self.warmup_steps - 1:  # untimed: a walk over the parameters
            self.gradient_bytes = live_gradient_bytes(self.model)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._losses.append(step_loss)

    def run(self, n_steps: int, progress: Any = None) -> None:
        """Run the next n_steps optimizer steps (`progress`: a tqdm bar to advance, or None)."""
        self.model.train()
        self.sync()
        segment_start = time.perf_counter()
        measured_start = segment_start if self.step >= self.warmup_steps else None
        if measured_start is not None and self.on_measure_start:
            self.on_measure_start()
        for _ in range(n_steps):
            if self.step == self.warmup_steps and measured_start is None:
                self.sync()
                if self.on_measure_start:
                    self.on_measure_start()
                measured_start = time.perf_counter()
            measured = self.step >= self.warmup_steps
            if self.timer is not None:
                self.timer.begin()
            self._one_step(measured)
            if self.timer is not None:
                self.timer.end(measured)
            self.step += 1
            if progress is not None:
                progress.update(1)
        self.sync()
        end = time.perf_counter()
        if self.timer is not None:
            self.timer.flush()  # events: read after the segment's one synchronize
        self.train_seconds += end - segment_start
        if measured_start is not None:
            self.measured_seconds += end - measured_start
            if self.on_measure_end:
                self.on_measure_end()

    def result(self) -> TrainResult:
        losses = torch.stack(self._losses).float().cpu().tolist() if self._losses else []
        return TrainResult(losses=losses, step_times=list(self.timer.step_times) if self.timer else [],
                           warmup_step_times=list(self.timer.warmup_times) if self.timer else [],
                           measured_seconds=self.measured_seconds,
                           measured_steps=max(0, self.step - self.warmup_steps), train_seconds=self.train_seconds,
                           measured_samples=int(self._samples), measured_tokens=int(self._tokens),
                           stop_reason=self.stop_reason)

    def measure_until_ci(self, target: float, max_seconds: float, max_steps: int) -> str:
        """After the fixed steps: train on in chunks until the steps/s 95% interval's relative half-width is
        at most `target`, or the measured time reaches `max_seconds`, or the measured steps `max_steps` (0: no
        such cap). Chunks grow with the window (a quarter of it, at least 4 steps) and stop short of the time
        cap. Sets and returns stop_reason."""
        if target <= 0 or self.timer is None:
            return self.stop_reason
        while True:
            times = self.timer.step_times
            rate = stats.rate_interval(times)
            width = rate.rel_half_width if rate is not None else None
            got = f"±{width * 100:.1f}%" if width is not None and math.isfinite(width) else "no finite interval"
            n = len(times)
            if width is not None and width <= target:
                self.stop_reason = f"ci target {target * 100:.1f}% met after {n} steps ({got})"
                break
            if max_steps and n >= max_steps:
                self.stop_reason = f"step cap {max_steps} steps ({got}, target {target * 100:.1f}%)"
                break
            if max_seconds and self.measured_seconds >= max_seconds:
                self.stop_reason = (f"time cap {max_seconds:g} s after {n} steps ({got}, "
                                    f"target {target * 100:.1f}%)")
                break
            chunk = max(4, n // 4)
            mean = sum(times) / n if n else 0.0
            if max_seconds and mean > 0:
                chunk = min(chunk, max(1, math.ceil((max_seconds - self.measured_seconds) / mean)))
            if max_steps:
                chunk = min(chunk, max_steps - n)
            self.run(chunk)
        return self.stop_reason


def local_bytes(t: torch.Tensor) -> int:
    """Bytes this process holds for a tensor: a DTensor (FSDP2 shard) counts its local shard only."""
    t = t.to_local() if hasattr(t, "to_local") else t
    return t.numel() * t.element_size()


def live_gradient_bytes(model: torch.nn.Module) -> int:
    """Bytes of the .grad tensors that exist now (none for parameters updated inside backward)."""
    return sum(local_bytes(p.grad) for p in model.parameters() if p.grad is not None)


def optimizer_state_bytes(optimizer: Any) -> int:
    """Bytes of what the optimizer keeps per parameter (AdamW moments, 8-bit quantisation maps, GaLore's
    projection matrices), each tensor counted once."""
    optimizers = optimizer.per_param.values() if hasattr(optimizer, "per_param") else [optimizer]
    seen: dict[int, int] = {}
    for opt in optimizers:
        for state in opt.state.values():
            for value in state.values():
                matrix = getattr(value, "ortho_matrix", None)  # galore-torch's projector object
                parts = matrix if isinstance(matrix, (list, tuple)) else [matrix] if matrix is not None else [value]
                for t in parts:
                    if torch.is_tensor(t):
                        seen.setdefault(id(t), local_bytes(t))
    return sum(seen.values())


def train_steps(model: torch.nn.Module, optimizer: Any, batches: Iterator[dict], *, steps: int,
                warmup_steps: int, **loop_kwargs: Any) -> TrainResult:
    """All steps in one go (the synthetic task and the overhead benchmark)."""
    loop = StepLoop(model, optimizer, batches, warmup_steps=warmup_steps, **loop_kwargs)
    loop.run(steps)
    return loop.result()

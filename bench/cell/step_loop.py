"""The training step loop. Warm-up steps run first and are left out of the rates; each step is timed with the
device synchronised before the clock is read (warm-up steps apart, for the one-off costs they hold). With trackers off it is the bare loop: one sync and two
clock reads around each run of measured steps, losses read once at the end.

A StepLoop can run in segments (train a while, evaluate, train on): the clocks cover only the training
segments, so evaluation never counts as training time.
"""
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
    warmup_step_times: list[float] = field(default_factory=list)  # warm-up steps, trackers on
    measured_seconds: float = 0.0  # post-warm-up training time
    measured_steps: int = 0
    train_seconds: float = 0.0  # all training segments, warm-up included (time-to-quality clock)
    measured_samples: int = 0
    measured_tokens: int = 0  # non-padding tokens (attention mask) of the measured steps


def synchronizer(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


class StepLoop:
    def __init__(self, model: torch.nn.Module, optimizer: Any, batches: Iterator[dict], *, warmup_steps: int,
                 grad_accum: int, device: str, autocast_dtype: torch.dtype | None, per_step_timing: bool = True,
                 on_measure_start: Callable[[], None] | None = None,
                 on_measure_end: Callable[[], None] | None = None) -> None:
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.warmup_steps, self.grad_accum = warmup_steps, grad_accum
        self.sync = synchronizer(device)
        self.timer = StepTimer(self.sync) if per_step_timing else None
        self.amp = (lambda: torch.autocast(device_type=device, dtype=autocast_dtype)) if autocast_dtype \
            else contextlib.nullcontext
        self.on_measure_start, self.on_measure_end = on_measure_start, on_measure_end
        self.step = 0
        self._losses: list[torch.Tensor] = []
        self.measured_seconds = 0.0
        self.train_seconds = 0.0
        self._samples = 0
        self._tokens: torch.Tensor | int = 0  # summed on the device: no sync per step
        self.gradient_bytes: int | None = None  # read once, before the last warm-up step's optimizer step

    def _one_step(self, measured: bool) -> None:
        step_loss = None
        for _ in range(self.grad_accum):
            batch = next(self.batches)
            if measured:
                ids = batch["input_ids"]
                self._samples += ids.shape[0]
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
                           measured_samples=self._samples, measured_tokens=int(self._tokens))


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

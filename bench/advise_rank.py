"""What fits one GPU, ranked: every configuration of the candidate space (method; rank; optimizer, 8-bit and
paged included; checkpointing; micro-batch x grad_accum for a target of tokens per optimizer step) predicted by
bench.estimate on the meta device, the largest micro-batch that fits kept per configuration, each with its
headroom, expected speed (bench.advise_speed), what it gives up, and the bench.run command that measures it.

The wrapped model's facts (bench.estimate.predict.facts_for: analytic where the estimator knows the model, else
a meta build) are taken once per method x rank x precision x model: the optimizer, checkpointing, GaLore's
layer-wise step and the shape change no parameter, so those variants reuse them (predict_from;
tests/test_advise.py checks this equals predict_cell).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.advise_speed import Ask, Measured, Speed, expected_speed, settings_of
from bench.config import ConfigError

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.estimate.gpus import Gpu
    from bench.estimate.predict import Prediction

ADAPTER_OPTIMIZERS = ("adamw", "adamw8bit", "paged_adamw", "paged_adamw8bit")
# method -> (ranks swept?, optimizers, extra override sets): each method's own conf default otherwise
SPACE: dict[str, tuple[bool, tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "full": (False, ("adamw", "adamw8bit"), (("method.precision=mixed",), ("method.precision=pure",))),
    "lora": (True, ADAPTER_OPTIMIZERS, ((),)),
    "dora": (True, ADAPTER_OPTIMIZERS, ((),)),
    "qlora": (True, ADAPTER_OPTIMIZERS, ((),)),
    "qlora8": (True, ADAPTER_OPTIMIZERS, ((),)),
    "galore": (False, ("adamw", "adamw8bit"), (("method.layerwise=false",), ("method.layerwise=true",))),
}
NOT_MODELLED_TRY = ("adam_mini", "apollo", "apollo_mini", "q_galore")  # refused by the estimator today
RANKS = (8, 16, 64)
MICRO_BATCHES = (16, 8, 4, 2, 1)
TIGHT = 0.05  # the CUDA peak's calibration: within +-5 % on all 16 H100 records (bench/estimate/README.md)


@dataclass(frozen=True)
class Candidate:
    method: str  # conf/method option
    rank: int | None
    optimizer: str
    checkpointing: bool
    extra: tuple[str, ...] = ()

    def overrides(self, model: str, seq_len: int) -> list[str]:
        out = [f"method={self.method}", f"model={model}", f"method.optimizer={self.optimizer}",
               f"train.gradient_checkpointing={str(self.checkpointing).lower()}", f"train.seq_len={seq_len}"]
        if self.rank is not None:
            out.append(f"method.rank={self.rank}")
        if self.method in ("qlora", "qlora8"):  # QLoRA's conf turns checkpointing on by itself
            out.append(f"method.gradient_checkpointing={str(self.checkpointing).lower()}")
        return out + list(self.extra)


@dataclass
class Row:
    cand: Candidate
    model_name: str
    params_total: int
    fits: bool
    peak_bytes: int
    headroom_bytes: int
    batch_size: int
    grad_accum: int
    tokens_per_step: int
    trainable_pct: float
    base: str
    gives_up: str
    speed: Speed
    command: str
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        c = self.cand
        extra = {"method.precision=pure": "pure 16-bit", "method.precision=mixed": "mixed", "method.layerwise=true":
                 "layer-wise", "method.layerwise=false": ""}
        parts = [c.method, f"r{c.rank}" if c.rank else "", c.optimizer, *(extra.get(e, e) for e in c.extra),
                 "ckpt" if c.checkpointing else "no ckpt"]
        return " ".join(p for p in parts if p)

    @property
    def tight(self) -> bool:
        return self.fits and self.headroom_bytes < TIGHT * self.peak_bytes


def gpu_from_key(key: str) -> Gpu:
    """A conf/gpu/ entry, or `<N>gb`: a generic GPU of that memory (no speed: no catalog peak)."""
    from bench.estimate.gpus import Gpu, resolve

    size = re.fullmatch(r"(\d+(?:\.\d+)?)gb", key.lower())
    if size:
        gb = float(size.group(1))
        if gb <= 0:
            raise ConfigError(f"gpu: memory must be > 0 GB (got {key!r})")
        return Gpu(key=key, name=f"{gb:g} GB GPU", memory_gb=gb, bf16_tflops=None, fp16_tflops=None,
                   source=f"generic: gpu={key} (memory only)")
    return resolve([key])[0]


def candidates(methods: list[str] | None = None, ranks: tuple[int, ...] = RANKS) -> list[Candidate]:
    out = []
    for method in list(SPACE) if methods is None else methods:
        sweep_ranks, optimizers, extras = SPACE[method]
        for rank in (ranks if sweep_ranks else (None,)):
            for optimizer in optimizers:
                for extra in extras:
                    for ckpt in (True, False):
                        out.append(Candidate(method, rank, optimizer, ckpt, extra))
    return out


_FACTS: dict[tuple[Any, ...], Any] = {}


def _predict(cfg: RunConfig, gpu: Gpu | None) -> Prediction:
    """predict_cell, with the wrapped model's facts shared by variants that change no parameter."""
    from bench.estimate import predict

    name_of = getattr(predict, "compute_dtype_name", None)  # by name: no torch where the facts are analytic
    compute = name_of(cfg, "cuda", gpu) if name_of else predict.compute_dtype_for(cfg, "cuda", gpu)
    m = cfg.method
    key = (cfg.model.name, m.name, getattr(m, "rank", None), getattr(m, "precision", None), m.base_bits,
           getattr(m, "target_modules", None), getattr(m, "compute_dtype", None), str(compute))
    if key not in _FACTS:
        facts_for = getattr(predict, "facts_for", None)  # analytic facts where bench.estimate knows the model
        _FACTS[key] = facts_for(cfg, compute) if facts_for else predict.model_facts(
            cfg, predict.build_meta_model(cfg, compute))
    return predict.predict_from(cfg, _FACTS[key], compute, "cuda")


def with_shape(cfg: RunConfig, batch_size: int, grad_accum: int) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch_size, grad_accum=grad_accum))


def _gives_up(cand: Candidate, pred: Prediction, base_bits: int) -> tuple[str, str]:
    pct = pred.inventory.summary()["trainable_pct"]
    base = {4: "4-bit NF4", 8: "8-bit int8"}.get(base_bits, "16-bit")
    parts = []
    if pct < 99.5:
        parts.append(f"trains {pct:.2g}% of weights")
    if base_bits < 16:
        parts.append(f"quantised {base} base")
    if cand.method == "galore":
        parts.append(f"gradients projected to rank {pred.inventory.terms.projection_rank}")
    if "8bit" in cand.optimizer:
        parts.append("8-bit optimizer states")
    if "paged" in cand.optimizer:
        parts.append("optimizer states paged (may spill to host)")
    if "method.precision=pure" in cand.extra:
        parts.append("16-bit weights and states (no fp32 master)")
    if cand.checkpointing:
        parts.append("recomputes the forward")
    return base, "; ".join(parts) or "nothing"


def command(cand: Candidate, model: str, seq_len: int, batch: int, accum: int, gpu: Gpu) -> str:
    fp16_only = not gpu.supports_bf16 and bool(gpu.fp16_tflops)  # e.g. T4
    extra = ["method.compute_dtype=fp16"] if fp16_only and cand.method in ("qlora", "qlora8") else []
    return "python -m bench.run " + " ".join(cand.overrides(model, seq_len) + [
        f"train.batch_size={batch}", f"train.grad_accum={accum}"] + extra)


def shapes(seq_len: int, target_tokens: int, layerwise: bool) -> list[tuple[int, int]]:
    """(micro-batch, grad_accum) from the largest micro-batch down, each reaching the target tokens per step
    (at least one sequence); layer-wise GaLore can't accumulate, so its micro-batch is the whole step."""
    out = []
    for b in MICRO_BATCHES:
        if b > 1 and b * seq_len > target_tokens:
            continue
        out.append((b, 1 if layerwise else max(1, math.ceil(target_tokens / (b * seq_len)))))
    return out


def evaluate(cand: Candidate, cfg: RunConfig, model: str, gpu: Gpu, target_tokens: int,
             measured: list[Measured], goal: str = "speed") -> Row:
    """goal speed: the largest micro-batch of this configuration that fits with TIGHT headroom, else the
    largest that fits at all (or, when none does, one sequence at a time); goal memory: one sequence at a
    time, the smallest peak it has."""
    layerwise = bool(getattr(cfg.method, "layerwise", False))
    tried = shapes(cfg.train.seq_len, target_tokens, layerwise)

    def roomy(pred: Prediction) -> bool:
        return gpu.memory_bytes - pred.peak_bytes >= TIGHT * pred.peak_bytes

    options = []  # (shape, prediction) from the largest micro-batch down, up to the first with room
    for b, a in tried if goal == "speed" else tried[-1:]:
        options.append(((b, a), _predict(with_shape(cfg, b, a), gpu)))
        if roomy(options[-1][1]):
            break
    fitting = [o for o in options if o[1].peak_bytes <= gpu.memory_bytes]
    (b, a), pred = next((o for o in options if roomy(o[1])), fitting[0] if fitting else options[-1])
    fits = pred.peak_bytes <= gpu.memory_bytes
    shaped = with_shape(cfg, b, a)
    base, gives_up = _gives_up(cand, pred, cfg.method.base_bits)
    tokens = b * shaped.train.seq_len * a
    ask = Ask(method=cfg.method.name, bits=cfg.method.base_bits, model=cfg.model.name,
              params_total=pred.inventory.total(), rank=cand.rank if cand.method != "galore" else cfg.method.rank,
              optimizer=cand.optimizer, checkpointing=pred.checkpointing, batch_size=b,
              settings=settings_of(dataclasses.asdict(cfg.method)),
              seq_len=shaped.train.seq_len, hardware_flops=pred.flops["hardware_flops"], tokens_per_step=tokens)
    speed = expected_speed(ask, gpu, measured) if fits else Speed(None, "does not fit")
    return Row(cand=cand, model_name=cfg.model.name, params_total=pred.inventory.total(), fits=fits,
               peak_bytes=int(pred.peak_bytes),
               headroom_bytes=gpu.memory_bytes - int(pred.peak_bytes), batch_size=b, grad_accum=a,
               tokens_per_step=tokens, trainable_pct=pred.inventory.summary()["trainable_pct"], base=base,
               gives_up=gives_up, speed=speed, command=command(cand, model, cfg.train.seq_len, b, a, gpu),
               notes=list(pred.notes))


def _refused(cfg: RunConfig) -> bool:
    from bench.estimate.inventory import method_terms

    try:
        method_terms(cfg)
    except ConfigError:
        return True
    return False


def advise(model: str, gpu: Gpu, seq_len: int, target_tokens: int, methods: list[str] | None,
           measured: list[Measured], ranks: tuple[int, ...] = RANKS,
           goal: str = "speed") -> tuple[list[Row], list[str]]:
    """Every candidate's row (fitting or not), in candidate order (rank_rows orders them for a goal), and the
    methods bench.run has that the estimator refuses (never listed as fitting)."""
    from bench.estimate import sweep

    cands = candidates(None if methods is None else [m for m in methods if m in SPACE], ranks)
    unmodelled = [m for m in NOT_MODELLED_TRY if methods is None or m in methods]
    combos = [c.overrides(model, seq_len) for c in cands] + [[f"method={m}", f"model={model}"] for m in unmodelled]
    composed = sweep.compose_many(combos) if combos else []  # one Hydra session for all
    cfgs, probes = composed[:len(cands)], composed[len(cands):]
    if not gpu.supports_bf16 and (gpu.fp16_tflops or gpu.bf16_tflops):  # e.g. T4: QLoRA computes in fp16
        cfgs = [dataclasses.replace(c, method=dataclasses.replace(c.method, compute_dtype="fp16"))
                if hasattr(c.method, "compute_dtype") else c for c in cfgs]
    rows = [evaluate(c, cfg, model, gpu, target_tokens, measured, goal) for c, cfg in zip(cands, cfgs)]
    return rows, [m for m, cfg in zip(unmodelled, probes) if _refused(cfg)]


def rank_rows(rows: list[Row], goal: str) -> list[Row]:
    """Fitting rows only. memory: lowest peak first (at micro-batch 1, evaluate's memory shape); speed: highest
    expected tokens/s first (rows without a speed after those with one), then lowest peak."""
    fit = [r for r in rows if r.fits]
    if goal == "memory":
        return sorted(fit, key=lambda r: (r.peak_bytes, r.command))
    return sorted(fit, key=lambda r: (r.speed.tokens_per_s is None,
                                      -(r.speed.tokens_per_s.value if r.speed.tokens_per_s else 0.0),
                                      r.peak_bytes, r.command))

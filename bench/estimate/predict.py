"""One cell's prediction: parameters, memory components, the peak and its runtime share, FLOPs.

`predict(cfg, meta_model, compute, device)` works on the wrapped meta model bench.cell.runner.plan already has;
`predict_cell(cfg, device, gpu)` builds that model itself (the CLI, the tables, the tests), once per model x
method x precision in a process: what it reads off the model (`ModelFacts`: architecture, parameter inventory)
does not depend on batch size, sequence length or accumulation, so a second shape of the same cell is
arithmetic only (milliseconds).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.estimate import activations as acts
from bench.estimate import encoder, sharding
from bench.estimate.arch import Arch, arch_from_config
from bench.estimate.flops import flops_per_step
from bench.estimate.inventory import Inventory, build_inventory
from bench.estimate.peak import Peak, PeakInputs, add_runtime, small_tensor_bytes, tensor_peak
from bench.estimate.states import gradient_bytes, optimizer_bytes, weight_bytes

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig
    from bench.estimate.gpus import Gpu


@dataclass
class Prediction:
    device: str
    compute_dtype: str
    arch: Arch
    inventory: Inventory
    weights: dict[str, int]
    components: dict[str, int]
    activation_parts: dict[str, float]  # per token per layer (or coarse)
    peak: Peak
    host_load_bytes: int
    flops: dict[str, Any]
    checkpointing: bool
    attention_kernel: str
    seq_len: int
    notes: list[str] = field(default_factory=list)

    @property
    def peak_bytes(self) -> int:
        """What the run's headline peak should read: on CPU the growth of RSS over the pre-load baseline."""
        return max(self.peak.total, self.host_load_bytes + self.peak.runtime.get("process_runtime", 0)) \
            if self.device != "cuda" else self.peak.total


def compute_dtype_for(cfg: RunConfig, device: str, gpu: Gpu | None = None) -> torch.dtype:
    """The run's compute dtype on the target (bench.cell.models.train_dtype without asking CUDA)."""
    from bench.cell.models import DTYPES

    if cfg.train.precision != "auto":
        return DTYPES[cfg.train.precision]
    if device == "cuda":
        return DTYPES["bf16"] if gpu is None or gpu.supports_bf16 else DTYPES["fp16"]
    return DTYPES["fp32"]


def sequence_length(cfg: RunConfig) -> int:
    """Tokens per example: train.seq_len for synthetic tokens; a text task pads each batch to its longest
    example, truncated at task.max_length, which is the bound the peak is predicted at."""
    return cfg.task.max_length if cfg.task.kind != "synthetic" else cfg.train.seq_len


def build_meta_model(cfg: RunConfig, compute: torch.dtype) -> torch.nn.Module:
    """The wrapped model as bench.cell.runner.plan builds it, adapters created on the meta device as well."""
    import torch

    from bench import methods

    from bench.cell import models

    from bench.estimate.inventory import method_terms

    method = methods.get(cfg.method.name)
    method_terms(cfg)  # refuse a method the estimator does not model before building anything
    head: dict[str, Any] = {}
    try:  # the task's head (classification, QA), as plan builds it; older checkouts: causal LM only
        from bench.tasks.quality import task_head

        head = task_head(cfg.task)
    except ImportError:
        pass
    with torch.device("meta"):
        base = models.build_model(cfg, "cpu", method.weights_dtype(cfg, compute), meta=True, **head)
        return method.wrap(base, cfg)



def _cast_copies(inv: Inventory, cfg: RunConfig, compute_bytes: int) -> int:
    """Mixed precision under autocast: a 16-bit copy of every trained matmul weight, saved for backward."""
    if inv.terms is None or not inv.terms.fp32_master or compute_bytes >= 4:
        return 0
    return sum(r.numel * compute_bytes for r in inv.rows
               if r.trainable and len(r.shape) == 2 and "embed" not in r.name.split(".")[-2])


@dataclass(frozen=True)
class ModelFacts:
    """What a prediction reads off the wrapped meta model: the same for every batch size, sequence length and
    accumulation of one model x method x precision."""
    arch: Arch
    inventory: Inventory
    causal_lm: bool


def model_facts(cfg: RunConfig, meta_model: torch.nn.Module) -> ModelFacts:
    causal_lm = type(meta_model).__name__.endswith("ForCausalLM") or hasattr(meta_model, "lm_head")
    return ModelFacts(arch_from_config(meta_model.config), build_inventory(cfg, meta_model), causal_lm)


def predict(cfg: RunConfig, meta_model: torch.nn.Module, compute: torch.dtype, device: str) -> Prediction:
    return predict_from(cfg, model_facts(cfg, meta_model), compute, device)


def predict_from(cfg: RunConfig, facts: ModelFacts, compute: torch.dtype, device: str) -> Prediction:
    m, t = cfg.method, cfg.train
    c = compute.itemsize
    arch, inv, causal_lm = facts.arch, facts.inventory, facts.causal_lm
    weights = weight_bytes(inv, bool(getattr(m, "double_quant", False)))
    grads, largest_grad = gradient_bytes(inv)
    optimizer = optimizer_bytes(inv, m.optimizer, device, inv.terms.projection_rank)
    flow = acts.flow_for(cfg, c, device)
    checkpointing = t.gradient_checkpointing or bool(getattr(m, "gradient_checkpointing", False))
    kernel = acts.attention_kernel(cfg, arch, flow, device)
    seq = sequence_length(cfg)
    dropout = float(getattr(m, "dropout", 0.0))
    if arch.detailed:
        parts = acts.layer_bytes_per_token(arch, flow, inv, kernel, seq, dropout)
        head = acts.head_bytes_per_token(arch, flow) if causal_lm else arch.hidden * 4.0
    elif arch.encoder:
        parts = encoder.encoder_layer_bytes_per_token(arch, flow, inv, kernel, seq, dropout)
        head = encoder.encoder_head_bytes_per_token(arch, flow)
    else:
        parts = acts.coarse_layer_bytes_per_token(arch, flow)
        head = acts.head_bytes_per_token(arch, flow) if causal_lm else arch.hidden * 4.0
    totals = acts.model_totals(arch, flow, inv, parts, t.batch_size, seq, dropout, checkpointing, causal_lm, head)
    head_grad = sum(r.numel * int(r.element_bytes) for r in inv.rows if causal_lm and r.trainable
                    and (r.name.endswith("lm_head.weight") or (arch.tied and "embed" in r.name)))
    weights_total = sum(weights.values())
    cast_copies = _cast_copies(inv, cfg, c)
    fsdp = sharding.share(cfg, inv)  # parallel=fsdp, meta-sharded: this rank's share (sharding.py)
    if fsdp:
        weights_total = fsdp.part(weights_total) + fsdp.gathered_weights
        grads, head_grad = fsdp.part(grads), head_grad + fsdp.layer_gradients
        optimizer.states, optimizer.projectors = fsdp.part(optimizer.states), fsdp.part(optimizer.projectors)
        optimizer.step_temporary = fsdp.part(optimizer.step_temporary)
        optimizer.paged = fsdp.part(optimizer.paged)
    device_states = optimizer.states - optimizer.paged  # paged states live in managed memory (states.py)
    peak_inputs = PeakInputs(weights=weights_total, optimizer_states=device_states + optimizer.projectors,
                             optimizer_temporary=optimizer.step_temporary, gradients=grads,
                             largest_gradient=largest_grad, head_gradient=head_grad, activations=totals["peak"],
                             cast_copies=cast_copies, grad_accum=t.grad_accum,
                             layerwise=bool(getattr(m, "layerwise", False)))
    peak = tensor_peak(peak_inputs)
    largest_activation = t.batch_size * seq * max(arch.hidden, arch.intermediate) * 4
    n = fsdp.n if fsdp else 1
    small = small_tensor_bytes(peak, [int(r.numel * r.element_bytes) // n for r in inv.rows], largest_activation)
    dequantized = max((r.numel for r in inv.rows if r.kind == "quantized"), default=0) * (
        weights_dtype_bytes(cfg) if m.base_bits < 16 else 0)  # bitsandbytes expands it to the compute dtype
    peak = add_runtime(peak, device, inv.terms, small, optimizer=m.optimizer, base_bits=m.base_bits,
                       dequantized_bytes=dequantized, paged_bytes=optimizer.paged)
    components = {"weights": weights_total, "gradients": grads, "optimizer_states": optimizer.states,
                  "galore_projectors": optimizer.projectors, "optimizer_step_temporary": optimizer.step_temporary,
                  "activations_peak": totals["peak"], "activations_saved": totals["saved"],
                  "loss_logit_gradients": totals["loss"],
                  "backward_work": totals["work"], "cast_copies": cast_copies, **peak.runtime,
                  "paged_optimizer_states": optimizer.paged, "largest_dequantized_weight": dequantized}
    host_load = 0
    if m.base_bits == 8 and device == "cuda":  # LLM.int8 weights are quantised on their way from the host
        host_load = int(max((r.numel for r in inv.rows if r.kind == "quantized"), default=0)
                        * weights_dtype_bytes(cfg))  # one 16-bit weight at a time (bench.cell.models.quantize_linears)
    notes = list(inv.notes) + ([fsdp.note()] if fsdp else [])
    if not arch.detailed and not arch.encoder:
        notes.append(f"activations: coarse rule for model_type {arch.model_type!r} (no per-tensor model)")
    if kernel == "math":
        notes.append("attention: fp32 grouped-query SDPA on CUDA assumed to fall back to the math kernel (seq^2 "
                     "probabilities; flash takes 16-bit only, memory-efficient no GQA): verify on a GPU")
    return Prediction(device=device, compute_dtype=str(compute).removeprefix("torch."), arch=arch, inventory=inv,
                      weights=weights, components=components, activation_parts=parts, peak=peak,
                      host_load_bytes=host_load, flops=flops_per_step(cfg, arch, inv, checkpointing, seq, causal_lm),
                      checkpointing=checkpointing, attention_kernel=kernel, seq_len=seq, notes=notes)


def weights_dtype_bytes(cfg: RunConfig) -> int:
    from bench.cell.models import DTYPES

    return DTYPES[getattr(cfg.method, "compute_dtype", "bf16")].itemsize


SHAPE_KEYS = ("batch_size", "seq_len", "grad_accum", "steps", "warmup_steps", "seed")  # don't change the model
_FACTS: dict[str, ModelFacts] = {}  # this process's wrapped-model facts, by everything but SHAPE_KEYS
_FACTS_MAX = 128


def _facts_key(cfg: RunConfig, compute: torch.dtype) -> str:
    import dataclasses
    import json

    raw = dataclasses.asdict(cfg)
    for key in SHAPE_KEYS:
        raw.get("train", {}).pop(key, None)
    return json.dumps([raw, str(compute)], sort_keys=True, default=str)


def predict_cell(cfg: RunConfig, device: str = "cuda", gpu: Gpu | None = None) -> Prediction:
    """Build the meta model (once per model x method x precision in a process: another batch size, sequence
    length or accumulation reuses its facts) and predict; `device` is the target (no GPU needed to predict one)."""
    compute = compute_dtype_for(cfg, device, gpu)
    key = _facts_key(cfg, compute)
    facts = _FACTS.get(key)
    if facts is None:
        facts = model_facts(cfg, build_meta_model(cfg, compute))  # the model itself is dropped here
        if len(_FACTS) >= _FACTS_MAX:
            _FACTS.clear()
        _FACTS[key] = facts
    return predict_from(cfg, facts, compute, device)

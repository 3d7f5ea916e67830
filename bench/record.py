"""The run record: one JSON file per measured cell, the only thing the run path and report path share.

Schema (version 1) is documented here as TypedDicts and in the README. Records are written atomically:
a temporary file in the same folder, fsync, then os.replace, so a reader never sees half a record.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypedDict

from bench.stats import T95  # noqa: F401  (re-exported: the t quantiles live with every interval, in bench.stats)

SCHEMA_VERSION = 1
Status = Literal["success", "oom", "failed", "skipped"]
# Keys of the resolved config that don't change what is measured, left out of the config hash.
HASH_EXCLUDED = ("experiment_name", "results_dir", "trackers", "sample_interval_ms", "rss_sample_interval_ms",
                 "preflight", "isolate", "cell_start", "cell_timeout_s", "cell_memory_cap_gb", "cell_memory_budget_gb", "force", "gpu_busy",
                 "gpu_busy_threshold_gb", "lr_by_method", "max_cell_minutes", "repeat")  # lr_by_method: its effect is method.lr
# Keys that change what is measured but came after records existed: hashed unless at this default, so a
# single-process cell keeps the hash it always had (resume and bench.compare still match it).
# A dotted key names a key of a config group ("train.until_ci": config["train"]["until_ci"]).
HASH_DEFAULTS = {"nproc": 1, "parallel": "none", "train.until_ci": 0.0, "train.max_measure_s": 120.0,
                 "train.max_measure_steps": 0, "train.step_clock": "sync",
                 "task.eval_split": "dev", "task.holdout": None,
                 "train.compile": False, "train.liger": False, "task.min_seq_len": 0, "task.packing": False}
# A record's file name: labels cut to this many bytes, then the hash. With the hidden temp and lock files
# written beside it (".<name>.<suffix>") it stays well under the usual 255-byte limit on a file name.
STEM_LABEL_BYTES = 160
# How the cell's process began: exec | fork (a sweep's cell) | inline. The sweep sets it (bench.launch), the cell
# copies it into the record's env (bench.cell.env): here, so neither process's package imports the other's.
CELL_START_ENV = "BENCH_CELL_START"
# The file a parallel cell's first failing rank claims (O_EXCL) to write the record: named by the sweep
# (bench.launch.launcher), claimed by the rank (bench.cell.distributed).
CLAIM_ENV = "BENCH_CELL_CLAIM"


class ErrorInfo(TypedDict):
    type: str
    message: str


class ParamsInfo(TypedDict):
    total: int  # logical parameters: a 4-bit packed weight counts the values it holds
    trainable: int
    trainable_pct: float
    by_dtype: dict[str, int]  # storage dtype -> logical parameters


class PhaseMemory(TypedDict, total=False):
    # CUDA: NVML (sampled) and torch allocator peaks, bytes
    nvml_process_peak: int | None
    nvml_device_peak: int | None
    torch_max_allocated: int
    torch_max_reserved: int
    # CPU: resident set size: kernel high-water mark of the phase (VmHWM, reset at phase start), sampled peak
    rss_hwm: int | None
    rss_peak: int
    rss_start: int
    rss_end: int
    samples: int
    seconds: float


class MemoryInfo(TypedDict):
    device: str  # "cuda" | "cpu"
    sample_interval_ms: float
    baseline: dict[str, int | None]  # before the model loads
    phases: dict[str, PhaseMemory]  # load / train / eval
    peak_bytes: int | None  # headline: NVML process peak on CUDA (else torch reserved); on CPU the kernel's
    # RSS high-water mark (else the sampled RSS peak)
    peak_source: str
    peak_over_baseline_bytes: int | None  # peak minus the same counter's reading before the model loaded
    rss_max_kernel: int | None  # getrusage high-water mark of the whole process (CPU)


class OutlierSteps(TypedDict):
    count: int
    indices: list[int]  # positions in step_times_s
    rule: str


class TimingInfo(TypedDict):
    warmup_steps: int
    measured_steps: int
    step_times_s: list[float]
    steps_per_s: float
    samples_per_s: float
    tokens_per_s: float
    # 95% intervals [lo, hi] of the one steps/s estimate (bench.stats.rate_interval), samples/s and tokens/s
    # scaled from it; null with < 4 measured steps or trackers off; hi null when unbounded above
    steps_per_s_ci95: list[float | None] | None
    samples_per_s_ci95: list[float | None] | None
    tokens_per_s_ci95: list[float | None] | None
    rate_ci_method: str | None
    outlier_steps: OutlierSteps | None  # counted and listed, never dropped from the rates
    stop_reason: str  # "fixed steps" | "ci target 2.0% met after N steps (...)" | "time cap ..." | "step cap ..."
    step_clock: str | None  # sync | events; null without per-step times (trackers off)
    step_p50_s: float
    step_p90_s: float
    train_seconds: float  # measured steps only
    samples_per_step: int
    tokens_per_step: int
    train_seconds_with_warmup: float  # every training segment, warm-up included
    warmup_step_times_s: list[float]  # each warm-up step (trackers on; empty with trackers off): one-off costs


class EnergyInfo(TypedDict):
    joules: float
    joules_per_step: float
    source: str


class RankFigures(TypedDict):
    rank: int
    peak_bytes: int | None  # that process's headline peak (memory.peak_source)
    steps_per_s: float | None
    local_param_bytes: int | None  # bytes of the parameters that rank holds (its FSDP shards, or all)


class DistributedInfo(TypedDict):
    world_size: int
    parallel: str  # fsdp | ddp
    backend: str  # gloo (CPU) | nccl (CUDA)
    global_batch_size: int  # train.batch_size x world_size: timing's samples/tokens count every rank's
    memory_rank: int  # the rank whose memory block the record holds (the highest peak)
    per_rank: list[RankFigures]  # every rank's figures (empty when a rank failed: see failed_rank)
    failed_rank: int | None  # the rank whose failure the record holds, else None
    load: str | None  # meta_sharded (each rank materialised its shards only) | whole_model (built, then wrapped)
    activation_checkpointing: bool | None  # read from rank 0's model after loading, not from the config


class RunRecord(TypedDict, total=False):
    schema_version: int
    status: Status
    error: ErrorInfo | None
    created_at: str  # ISO 8601, UTC
    experiment: str
    cell: dict[str, Any]  # short labels: method, model, task, rank, bits
    config: dict[str, Any]  # the resolved RunConfig
    config_hash: str
    model: dict[str, Any]  # name, init ("random" | "pretrained"), source, architecture summary
    setup: dict[str, Any]  # device, compute / weights / autocast dtypes, gradient checkpointing, batch, seq_len
    params: ParamsInfo | None
    preflight: dict[str, Any] | None  # estimate, available memory, fits
    memory: MemoryInfo | None
    timing: TimingInfo | None
    energy: EnergyInfo | None
    losses: list[float]
    warnings: list[str]  # distinct library warnings raised during the cell (deprecations left out)
    env: dict[str, Any]
    wall_seconds: float
    quality: dict[str, Any] | None  # text tasks (see README)
    data: dict[str, Any] | None
    state_bytes: dict[str, int | None] | None  # measured: gradients live before the last warm-up step's
    # optimizer step, and optimizer state tensors after training (bytes; None where not measured)
    repeats: dict[str, Any]  # repeats > 1: n, succeeded, runs (each repeat's headline figures, seed,
    # step times, quality curve and steps_to_target), stats (per metric: n, mean, stdev, ci95 [lo, hi],
    # rel_ci95_half_width, method), representative
    distributed: DistributedInfo | None  # parallel=fsdp|ddp (torchrun): written by rank 0; memory is the
    # highest-peak rank's, timing rank 0's with every rank's samples and tokens; null for one process


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the config minus keys that don't change the measurement (and minus
    HASH_DEFAULTS' keys at their default)."""
    kept = {k: v for k, v in config.items()
            if k not in HASH_EXCLUDED and not (k in HASH_DEFAULTS and v == HASH_DEFAULTS[k])}
    for dotted, default in HASH_DEFAULTS.items():
        group, _, key = dotted.partition(".")
        if key and isinstance(kept.get(group), dict) and kept[group].get(key, default) == default:
            kept[group] = {k: v for k, v in kept[group].items() if k != key}
    blob = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def record_path(results_dir: str | os.PathLike, experiment: str, cell: dict[str, Any], chash: str) -> Path:
    parts = [str(cell.get(k)) for k in ("method", "model", "task") if cell.get(k) is not None]
    if cell.get("rank") is not None:
        parts.append(f"r{cell['rank']}")
    labels = "-".join(parts).replace("/", "_").replace("\0", "_")
    if len(labels.encode()) > STEM_LABEL_BYTES:  # long labels are kept whole in the record, cut in its name
        labels = labels.encode()[:STEM_LABEL_BYTES].decode(errors="ignore") + "~"
    return Path(results_dir) / experiment / f"{labels}-{chash[:10]}.json"


class CellIdentity(NamedTuple):
    """What names a cell's record, computed once per cell (cell_identity) and passed on."""
    labels: dict[str, Any]  # the record's `cell`
    config: dict[str, Any]  # the resolved config as a dict: the record's `config`
    chash: str  # config_hash(config)
    path: Path  # record_path(...)


def cell_labels(cfg: Any) -> dict[str, Any]:
    """`cfg`: a bench.config.RunConfig (not imported: this module stays free of the config's imports, so
    bench.report and bench.compare can read records without them)."""
    return {"method": cfg.method.name, "model": cfg.model.name, "task": cfg.task.name,
            "rank": getattr(cfg.method, "rank", None), "bits": cfg.method.base_bits,
            "optimizer": cfg.method.optimizer}


def cell_identity(cfg: Any) -> CellIdentity:
    config = dataclasses.asdict(cfg)  # what bench.config.to_dict returns, without importing bench.config
    labels, chash = cell_labels(cfg), config_hash(config)
    return CellIdentity(labels, config, chash, record_path(cfg.results_dir, cfg.experiment_name, labels, chash))


def cell_name(cell: dict[str, Any]) -> str:
    """A record's `cell` labels as one short line (progress bars, the sweep's ledger and summary)."""
    name = "/".join(str(cell[k]) for k in ("method", "model", "task"))
    if cell.get("rank") is not None:
        name += f" r{cell['rank']}"
    if cell.get("bits") not in (None, 16):
        name += f" {cell['bits']}-bit"
    return name


def new_record(cell: CellIdentity, experiment: str, status: Status = "failed", error: dict[str, Any] | None = None,
               env: dict[str, Any] | None = None, wall_seconds: float = 0.0) -> RunRecord:
    """Every key of a record, measured sections empty: the one skeleton, whether the cell fills it
    (bench.cell.runner) or a process writes it for a cell that could not (bench.launch)."""
    return {"schema_version": SCHEMA_VERSION, "status": status, "error": error,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "experiment": experiment, "cell": cell.labels, "config": cell.config, "config_hash": cell.chash,
            "model": None, "setup": None, "params": None, "preflight": None, "memory": None, "timing": None,
            "energy": None, "quality": None, "data": None, "state_bytes": None, "distributed": None,
            "losses": [], "warnings": [], "env": env or {}, "wall_seconds": wall_seconds}


def _json_safe(value: Any) -> Any:
    """NaN/inf (a diverged loss) become null: strict JSON that every reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_record(record: RunRecord, path: str | os.PathLike) -> Path:
    path = Path(path)
    record = _json_safe(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a record is an ordinary readable file
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=False, allow_nan=False, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def record_files(folder: str | os.PathLike) -> list[Path]:
    """The record files under a folder, recursively, sorted: every *.json except hidden files and folders
    (.hydra, temporary files of an atomic write) and `logs/` folders (benchmark scripts' output kept beside
    the records, e.g. results/gpu-h100/logs). The one rule bench.report, bench.compare and bench.estimate
    --calibrate read results folders by."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*.json")
                  if not p.name.startswith(".")
                  and not any(part.startswith(".") or part == "logs" for part in p.relative_to(folder).parts[:-1]))


def read_record(path: str | os.PathLike) -> RunRecord:
    """Read and check one record; ValueError names the file when it is not a record of this schema."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON record ({exc})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        got = data.get("schema_version") if isinstance(data, dict) else None
        raise ValueError(f"{path}: schema_version {got!r}, expected {SCHEMA_VERSION}")
    if data.get("status") not in ("success", "oom", "failed", "skipped"):
        raise ValueError(f"{path}: unknown status {data.get('status')!r}")
    return data  # type: ignore[return-value]

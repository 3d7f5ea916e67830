"""The GPU catalog in conf/gpu/: memory and dense 16-bit tensor-core peak of each card, with its source.

Memory is taken as decimal gigabytes (80 GB -> 80e9 bytes). Cards expose a little more than that (binary
units) minus ECC and driver reservations, so a cell predicted to fit in the decimal figure is not refused
for rounding; the CUDA context is part of the estimate, not subtracted here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from bench.conf_dir import CONF_DIR
from bench.config import ConfigError

GPU_DIR = CONF_DIR / "gpu"


@dataclass(frozen=True)
class Gpu:
    key: str  # file stem: gpu=<key>
    name: str
    memory_gb: float
    bf16_tflops: float | None
    fp16_tflops: float | None
    source: str
    match: tuple[str, ...] = ()  # substrings of the CUDA device name

    def matches(self, device_name: str) -> bool:
        return bool(self.match) and all(m.lower() in device_name.lower() for m in self.match)

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * 1e9)

    @property
    def supports_bf16(self) -> bool:
        return bool(self.bf16_tflops)

    def peak_tflops(self, dtype_bytes: int) -> float | None:
        """Dense tensor-core peak for the run's compute dtype (bf16 if it has it, else fp16); fp32 runs get
        none: TF32 and CUDA-core rates are not in the catalog."""
        if dtype_bytes >= 4:
            return None
        return self.bf16_tflops or self.fp16_tflops


def for_device(device_name: str, gpus: Iterable[Gpu]) -> Gpu | None:
    """The catalog entry of a CUDA device name (as NVML and torch report it), or None."""
    return next((g for g in gpus if g.matches(device_name)), None) if device_name else None


def load_catalog(directory: Path = GPU_DIR) -> dict[str, Gpu]:
    import yaml

    catalog = {}
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        catalog[path.stem] = Gpu(key=path.stem, name=data["name"], memory_gb=float(data["memory_gb"]),
                                 bf16_tflops=data.get("bf16_tflops"), fp16_tflops=data.get("fp16_tflops"),
                                 source=data["source"], match=tuple(data.get("match") or ()))
    return catalog


def resolve(keys: list[str], catalog: dict[str, Gpu] | None = None) -> list[Gpu]:
    catalog = catalog if catalog is not None else load_catalog()
    unknown = [k for k in keys if k not in catalog]
    if unknown:
        raise ConfigError(f"gpu: unknown gpu {unknown[0]!r} (choose from {', '.join(catalog)})")
    return [catalog[k] for k in keys]

"""Model FLOPs utilisation (MFU) of a GPU record: the model FLOPs one optimizer step does (bench.estimate's
count, stored in the record's preflight: 6N per token for full fine-tuning and GaLore, 4N plus the adapters'
6 x parameters for LoRA / QLoRA, attention included, activation recomputation not) times the measured
steps/s, over the dense 16-bit tensor-core peak of the record's GPU in the catalog (conf/gpu/). The FLOPs are
counted, not measured; the speed is measured. None where the GPU is not in the catalog, the run did not
compute in 16 bits, or the record has no FLOP count.
"""
from __future__ import annotations

from bench.estimate.gpus import for_device
from bench.report.load import Rec
from bench.stats import Estimate

SIXTEEN_BIT = ("bfloat16", "float16")


def catalog_gpu(rec: Rec, gpus: list):
    return for_device(rec["gpu_name"] or "", gpus)


def mfu(rec: Rec, gpus: list) -> Estimate | None:
    """Fraction of the GPU's dense 16-bit peak the cell's model FLOPs reached, from the row's steps/s estimate
    (the repeats' mean or the one run, with its interval), so MFU and steps/s never mix statistics."""
    flops, steps = rec["model_flops_per_step"], rec.est.get("steps")
    gpu = catalog_gpu(rec, gpus)
    if not rec.ok or not flops or steps is None or gpu is None or rec["compute_dtype"] not in SIXTEEN_BIT:
        return None
    peak = gpu.peak_tflops(2)
    return steps.scaled(flops / (peak * 1e12)) if peak else None

"""Keep bitsandbytes from fetching compiled kernels from the Hugging Face hub unless the user opts in.

bitsandbytes 0.50.2, bitsandbytes/backends/cpu/ops.py, at import (module level): when the native library
loaded and the CPU has AVX512-BF16 (`has_avx512bf16()`), it runs
`from kernels import get_kernel; get_kernel("kernels-community/quantization-bitsandbytes", version=1)`
and uses the downloaded gemm_4bit_forward for 4-bit CPU inference; backends/mps/ops.py does the same
lazily for "kernels-community/bitsandbytes-mps". With the `kernels` package installed that downloads
native code from the hub (kernels 0.17.2, kernels/load.py get_kernel: HubResolver, or only the local cache
when huggingface_hub's HF_HUB_OFFLINE was set when huggingface_hub was imported) and loads it into the
process, changing what a QLoRA cell measures; any failure is caught and bitsandbytes falls back to its own
library. So unless BENCH_ALLOW_HUB_KERNELS=1, `guard()` wraps kernels.get_kernel so that a call from a
bitsandbytes module raises (bitsandbytes then takes its fallback) and is noted: `blocked()` lists the
repositories, and a RuntimeWarning lands in the record's warnings. It patches kernels as soon as anything
imports it (an import hook), so it works whichever of peft, transformers or bench imports it first; the
hook must be in place before bitsandbytes is imported.
"""
from __future__ import annotations

import importlib.abc
import os
import sys
import warnings
from typing import Any

OPT_IN = "BENCH_ALLOW_HUB_KERNELS"
_blocked: list[str] = []


def blocked() -> list[str]:
    """Hub kernels bitsandbytes asked for in this process and did not get."""
    return list(_blocked)


def message(repo_id: str) -> str:
    return (f"bench: bitsandbytes asked to fetch the hub kernel {repo_id!r} (kernels.get_kernel); prevented, "
            f"bitsandbytes uses its own library ({OPT_IN}=1 allows it)")


def _patch(kernels: Any) -> None:
    original = getattr(kernels, "get_kernel", None)
    if original is None or getattr(original, "_bench_guard", False):
        return

    def get_kernel(repo_id: str, *args: Any, **kwargs: Any) -> Any:
        caller = str(sys._getframe(1).f_globals.get("__name__", ""))
        if caller.startswith("bitsandbytes") and os.environ.get(OPT_IN) != "1":
            _blocked.append(repo_id)
            warnings.warn(message(repo_id), RuntimeWarning, stacklevel=2)
            raise RuntimeError(message(repo_id))
        return original(repo_id, *args, **kwargs)

    get_kernel._bench_guard = True  # type: ignore[attr-defined]
    kernels.get_kernel = get_kernel


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for `kernels` it lets the other finders find it and patches it once executed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "kernels":
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            _patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def guard() -> None:
    """Install the patch (idempotent; cheap: nothing is imported here)."""
    if "kernels" in sys.modules and sys.modules["kernels"] is not None:
        _patch(sys.modules["kernels"])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def already_loaded() -> bool:
    """bitsandbytes was imported before the guard and took a hub kernel (e.g. imported by a process that never
    imported bench.cell.models first)."""
    ops = sys.modules.get("bitsandbytes.backends.cpu.ops")
    return getattr(ops, "gemm_4bit_forward_kernel", None) is not None

"""bench: measure full fine-tuning, LoRA, QLoRA and GaLore on your own hardware."""
import logging as _logging

__version__ = "0.1.0"

# bitsandbytes' CPU backend tries to fetch an optional kernel from the hub at import and warns offline.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)

# bitsandbytes on an AVX512-BF16 CPU fetches a compiled kernel from the hub at import when `kernels` is
# installed; bench refuses that unless BENCH_ALLOW_HUB_KERNELS=1 (bench/hub_kernels.py). Installed here so it
# is in place before any entry point (the fork server included) imports bitsandbytes; it imports nothing.
from bench import hub_kernels as _hub_kernels  # noqa: E402

_hub_kernels.guard()

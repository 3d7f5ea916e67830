"""bench: measure full fine-tuning, LoRA, QLoRA and GaLore on your own hardware."""
import logging as _logging

__version__ = "0.1.0"

# bitsandbytes' CPU backend tries to fetch an optional kernel from the hub at import and warns offline.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)

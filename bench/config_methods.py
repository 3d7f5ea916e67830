"""Old home of the method schemas, kept for importers: each method's config dataclass now lives beside its code
in bench/methods/<name>.py, re-exported by bench.config."""
from bench.config import (  # noqa: F401
    LORA_PRESETS, METHOD_CLASSES, METHODS, PRECISIONS, ConfigError, FullConfig, GaloreConfig, LoraConfig,
    MethodConfig, QLoraConfig)

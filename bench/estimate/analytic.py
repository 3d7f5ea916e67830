"""The parameter inventory of a Llama-style decoder x method written down from the model config, row for row what
bench.estimate.inventory.build_inventory reads off the wrapped meta model (names, shapes, storage, trainable,
kind, projected, materialised), with no torch, transformers or peft: milliseconds instead of a meta build.

Known here (everything else returns None and is built on the meta device, bench.estimate.predict):
  architectures  random-init `llama`, `mistral`, `qwen2` (q/k/v biases) and `mixtral` (transformers 5: router
                 `mlp.gate` (E, h), fused experts `mlp.experts.gate_up_proj` (E, 2I, h) and `down_proj` (E, h, I))
                 causal LMs on a synthetic task, every structural key given in model.arch (ARCH_REQUIRED) and no
                 key outside ARCH_KNOWN (an unknown key could change the structure); not pretrained / GGUF
                 models, BERT-style encoders, task heads (GLUE, SQuAD), MoE families other than Mixtral
  methods        full, galore (whole base trained; GaLore's projected 2-D nn.Linear weights); the peft LoRA
                 family lora, dora, rslora, pissa, olora, loftq, loraplus, qlora (4- or 8-bit base) with
                 bias=none and targets qv / attention / all-linear / a list of q,k,v,o,gate,up,down_proj;
                 Mixtral's fused experts and router (all-linear: peft's ParamWrapper, rank 2r on gate_up_proj)
                 for lora, rslora, loraplus and qlora only
Where a cell would fail in the method's wrap (GaLore's rank above a projected side, a target that matches
nothing) or an SVD/QR init (PiSSA, OLoRA, LoftQ) has a rank above a target's side (peft then lowers it), None
too: the meta build decides. tests/test_estimate_scale.py checks the
rows equal the meta build's on tiny, 1b, 7b, 8x7b, 110b for every method above.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.estimate.arch import Arch, arch_from_config
from bench.estimate.inventory import Inventory, ParamRow, method_terms

if TYPE_CHECKING:
    from bench.config import RunConfig

ARCH_TYPES = ("llama", "mistral", "qwen2", "mixtral")
ARCH_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "vocab_size", "tie_word_embeddings")
MOE_REQUIRED = ("num_local_experts", "num_experts_per_tok")
ARCH_KNOWN = {"model_type", *ARCH_REQUIRED, *MOE_REQUIRED, "max_position_embeddings", "rms_norm_eps", "rope_theta",
              "rope_scaling", "rope_parameters", "sliding_window", "use_sliding_window", "max_window_layers",
              "initializer_range", "attention_dropout", "bos_token_id", "eos_token_id", "pad_token_id",
              "router_aux_loss_coef", "router_jitter_noise", "output_router_logits", "use_cache", "hidden_act"}
WHOLE_BASE = ("full", "galore")
LORA_FAMILY = ("lora", "dora", "rslora", "pissa", "olora", "loftq", "loraplus", "qlora")
EXPERT_ADAPTERS = ("lora", "rslora", "loraplus", "qlora")  # meta-checked on Mixtral's fused experts
DENSE_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def arch_of(cfg: RunConfig) -> Arch | None:
    """The Arch arch_from_config reads off the built model's config, or None outside what is known here."""
    m = cfg.model
    raw = dict(m.arch or {})
    kind = raw.get("model_type")
    if m.pretrained or getattr(m, "gguf_file", None) or kind not in ARCH_TYPES or cfg.task.kind != "synthetic":
        return None
    required = ARCH_REQUIRED + (MOE_REQUIRED if kind == "mixtral" else ())
    if any(raw.get(k) is None for k in required) or set(raw) - ARCH_KNOWN:
        return None
    return arch_from_config(_Config(raw))


class _Config:
    """Attribute access over model.arch, as arch_from_config reads a transformers config (absent: None)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.__dict__.update(raw)

    def __getattr__(self, name: str) -> Any:
        return None


def base_modules(arch: Arch) -> list[tuple[str, str, tuple[int, ...], bool]]:
    """(module, parameter, shape, is nn.Linear) of the unwrapped model, in named_modules order."""
    h, i, q, kv = arch.hidden, arch.intermediate, arch.q_out, arch.kv_out
    biased = arch.model_type == "qwen2"  # Qwen2's q, k, v projections carry a bias
    out: list[tuple[str, str, tuple[int, ...], bool]] = [("model.embed_tokens", "weight", (arch.vocab, h), False)]
    for n in range(arch.layers):
        p = f"model.layers.{n}."
        for name, shape in (("q_proj", (q, h)), ("k_proj", (kv, h)), ("v_proj", (kv, h)), ("o_proj", (h, q))):
            out.append((f"{p}self_attn.{name}", "weight", shape, True))
            if biased and name != "o_proj":
                out.append((f"{p}self_attn.{name}", "bias", shape[:1], True))
        if arch.experts:
            e = arch.experts
            out += [(f"{p}mlp.gate", "weight", (e, h), False),
                    (f"{p}mlp.experts", "gate_up_proj", (e, 2 * i, h), False),
                    (f"{p}mlp.experts", "down_proj", (e, h, i), False)]
        else:
            out += [(f"{p}mlp.{name}", "weight", shape, True)
                    for name, shape in (("gate_proj", (i, h)), ("up_proj", (i, h)), ("down_proj", (h, i)))]
        out += [(f"{p}input_layernorm", "weight", (h,), False), (f"{p}post_attention_layernorm", "weight", (h,), False)]
    out.append(("model.norm", "weight", (h,), False))
    if not arch.tied:
        out.append(("lm_head", "weight", (arch.vocab, h), True))
    return out


def weights_dtype(cfg: RunConfig, compute: str) -> str:
    """Method.weights_dtype without torch: full's mixed precision holds fp32, QLoRA its compute_dtype."""
    m = cfg.method
    if m.name == "full" and m.precision == "mixed":
        return "float32"
    if m.name == "qlora":
        return DTYPE_NAMES[m.compute_dtype]
    return compute


def lora_targets(cfg: RunConfig, arch: Arch) -> set[str] | None:
    """The leaf names of the nn.Linear modules peft adapts; None where this module does not know the answer."""
    m = cfg.method
    if m.bias != "none":
        return None
    targets = m.target_module_list()
    linears = DENSE_LINEARS[:4] if arch.experts else DENSE_LINEARS
    if targets == ["all-linear"]:
        return set(linears)
    return set(targets) if set(targets) <= set(linears) else None


def build(cfg: RunConfig, compute: str) -> tuple[Arch, Inventory] | None:
    """(architecture, inventory) written down from the config, or None: build it on the meta device."""
    arch = arch_of(cfg)
    m = cfg.method
    if arch is None or m.name not in WHOLE_BASE + LORA_FAMILY:
        return None
    terms = method_terms(cfg)  # a method without estimator terms is refused before anything else
    dtype = weights_dtype(cfg, compute)
    modules = base_modules(arch)
    if m.name in WHOLE_BASE:
        rows = _whole_base(cfg, modules, dtype)
    else:
        rows = _adapted(cfg, arch, modules, dtype)
    if rows is None:
        return None
    inv = Inventory(rows=rows, method=m.name, quant_bits=m.base_bits, terms=terms)
    unquantised = [r for r in rows if r.kind == "base" and len(r.shape) >= 3]
    if m.base_bits < 16 and unquantised:  # the same note build_inventory writes
        n = sum(r.numel for r in unquantised)
        inv.notes.append(f"{n / 1e9:.2f}B parameters in fused 3-D expert tensors are not nn.Linear, so the "
                         f"{m.base_bits}-bit loader leaves them unquantised (then fp32 after kbit preparation)")
    return arch, inv


def _whole_base(cfg: RunConfig, modules: list, dtype: str) -> list[ParamRow] | None:
    m = cfg.method
    targets = m.target_module_list() if m.name == "galore" else []
    projected = {(mod, pname) for mod, pname, shape, linear in modules
                 if linear and pname == "weight" and any(t in mod for t in targets)}
    if m.name == "galore":
        sides = [min(shape) for mod, pname, shape, _ in modules if (mod, pname) in projected]
        if cfg.model.arch.get("tie_word_embeddings") and any(t in "lm_head" for t in targets):
            projected.add(("model.embed_tokens", "weight"))  # the tied nn.Linear head holds the embedding
            sides.append(min(cfg.model.arch["vocab_size"], cfg.model.arch["hidden_size"]))
        if not sides or m.rank > min(sides) or (m.layerwise and cfg.train.grad_accum > 1):
            return None  # galore's wrap refuses it: the meta build raises its own error
    return [ParamRow(name=f"{mod}.{pname}", shape=shape, storage=dtype, trainable=True, kind="base",
                     projected=(mod, pname) in projected) for mod, pname, shape, _ in modules]


def _adapted(cfg: RunConfig, arch: Arch, modules: list, dtype: str) -> list[ParamRow] | None:
    from bench.config import ConfigError

    m = cfg.method
    targets = lora_targets(cfg, arch)
    if targets is None:
        return None
    experts = bool(arch.experts) and m.target_module_list() == ["all-linear"]
    if experts and m.name not in EXPERT_ADAPTERS:
        return None
    if experts and m.dropout > 0:  # bench.methods.lora.add_adapters' refusal, without building the model
        raise ConfigError(f"method.dropout must be 0 when target_modules reach {cfg.model.name!r}'s fused "
                          f"expert weights (peft can't apply dropout there; got {m.dropout})")
    bits, r = m.base_bits, m.rank
    sides = [min(shape) for mod, pname, shape, linear in modules if linear and mod.rsplit(".", 1)[-1] in targets
             and pname == "weight"]
    if m.name in ("pissa", "olora", "loftq") and r > min(sides, default=r):
        return None  # peft's SVD/QR inits give such a module a smaller rank (seen with PiSSA on meta)
    stored = "float32" if bits < 16 and dtype in ("float16", "bfloat16") else dtype  # kbit preparation's upcast
    quant = "int8" if bits == 8 else f"4bit-{getattr(m, 'quant_type', 'nf4')}"
    pre = "base_model.model."
    rows: list[ParamRow] = []

    def base(name: str, shape: tuple[int, ...], quantised: bool = False, materialised: bool = False) -> None:
        rows.append(ParamRow(name=pre + name, shape=shape, storage=quant if quantised else stored, trainable=False,
                             kind="quantized" if quantised else "base", materialised=materialised))

    def adapter(name: str, shape: tuple[int, ...]) -> None:
        rows.append(ParamRow(name=pre + name, shape=shape, storage="float32", trainable=True, kind="adapter"))

    last = {mod: k for k, (mod, _, _, _) in enumerate(modules)}  # a module's adapters follow its last parameter
    for k, (mod, pname, shape, linear) in enumerate(modules):
        leaf = mod.rsplit(".", 1)[-1]
        quantised = bits < 16 and linear and pname == "weight" and leaf != "lm_head"
        if linear and leaf in targets:
            base(f"{mod}.base_layer.{pname}", shape, quantised)
            if k == last[mod]:
                out, fan_in = next(s for md, pn, s, _ in modules if md == mod and pn == "weight")
                adapter(f"{mod}.lora_A.default.weight", (r, fan_in))
                adapter(f"{mod}.lora_B.default.weight", (out, r))
                if m.name == "dora":
                    adapter(f"{mod}.lora_magnitude_vector.default.weight", (out,))
            continue
        if experts and leaf == "gate":  # the router: its weight wrapped by peft's ParamWrapper
            base(f"{mod}.base_layer.{pname}", shape, materialised=True)
            adapter(f"{mod}.lora_A.default.weight", (r, shape[1]))
            adapter(f"{mod}.lora_B.default.weight", (shape[0], r))
            continue
        if experts and leaf == "experts":  # gate_up_proj (rank 2r per expert) inside down_proj's wrapper
            e, h, i = arch.experts, arch.hidden, arch.intermediate
            base(f"{mod}.base_layer.base_layer.{pname}", shape, materialised=True)
            if pname == "down_proj":
                adapter(f"{mod}.base_layer.lora_A.default.weight", (e * 2 * r, h))
                adapter(f"{mod}.base_layer.lora_B.default.weight", (2 * i, e * 2 * r))
                adapter(f"{mod}.lora_A.default.weight", (e * r, i))
                adapter(f"{mod}.lora_B.default.weight", (h, e * r))
            continue
        base(f"{mod}.{pname}", shape, quantised)
    return rows

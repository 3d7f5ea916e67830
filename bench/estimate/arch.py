"""The architecture numbers the memory and FLOP models need, read from a transformers config."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Llama-style decoders: RMSNorm, rotary attention (GQA), SwiGLU MLP or Mixtral-style top-k experts.
DECODER_TYPES = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "phi3")
# BERT-style post-LayerNorm encoders: GELU MLP, dropout after attention probabilities and each sub-block.
ENCODER_TYPES = ("bert", "roberta")


@dataclass(frozen=True)
class Arch:
    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    experts: int = 0  # 0: dense MLP
    active_experts: int = 0
    tied: bool = False
    attention_bias: bool = False
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0

    @property
    def detailed(self) -> bool:
        """Whether the Llama-style per-tensor activation model applies."""
        return self.model_type in DECODER_TYPES

    @property
    def encoder(self) -> bool:
        return self.model_type in ENCODER_TYPES

    @property
    def q_out(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_out(self) -> int:
        return self.kv_heads * self.head_dim

    def matmul_params_per_token(self, lm_head: bool = True) -> int:
        """Weights one token is multiplied by in a forward pass: attention, the MLP (active experts only;
        gated for Llama-style, two matrices otherwise) and the router, per layer, plus the LM head. The input
        embedding is a lookup, not a matmul."""
        h = self.hidden
        attn = h * self.q_out + 2 * h * self.kv_out + self.q_out * h
        mats = 2 if self.encoder else 3
        if self.experts:
            mlp = self.active_experts * mats * h * self.intermediate + h * self.experts
        else:
            mlp = mats * h * self.intermediate
        return self.layers * (attn + mlp) + (h * self.vocab if lm_head else 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def arch_from_config(config: Any) -> Arch:
    def get(*names: str, default: Any = None) -> Any:
        for name in names:
            value = getattr(config, name, None)
            if value is not None:
                return value
        return default

    hidden = int(get("hidden_size", "d_model", "n_embd"))
    heads = int(get("num_attention_heads", "n_head"))
    head_dim = get("head_dim")
    return Arch(model_type=str(get("model_type", default="")), hidden=hidden,
                intermediate=int(get("intermediate_size", "ffn_dim", "n_inner", default=4 * hidden)),
                layers=int(get("num_hidden_layers", "n_layer")), heads=heads,
                kv_heads=int(get("num_key_value_heads", default=heads)),
                head_dim=int(head_dim) if head_dim else hidden // heads, vocab=int(get("vocab_size")),
                experts=int(get("num_local_experts", "num_experts", default=0) or 0),
                active_experts=int(get("num_experts_per_tok", default=0) or 0),
                tied=bool(get("tie_word_embeddings", default=False)),
                attention_bias=bool(get("attention_bias", default=False)),
                hidden_dropout=float(get("hidden_dropout_prob", default=0.0) or 0.0),
                attention_dropout=float(get("attention_probs_dropout_prob", "attention_dropout", default=0.0) or 0.0))

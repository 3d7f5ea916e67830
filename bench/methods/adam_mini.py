"""Full fine-tuning with Adam-mini (Zhang et al. 2024, "Adam-mini: Use Fewer Learning Rates To Gain More";
the authors' `adam-mini` package, class Adam_mini): every weight trained, Adam's first moment kept per value but
its second moment one per block, blocks following the Transformer's structure (one per head for q and k, one per
output neuron for v, o, the MLP, embeddings and the output layer, one per tensor for norms), which removes most
of the second moment: about half of AdamW's optimizer states.

Adam-mini finds the blocks by parameter name (q_proj, k_proj, v_proj, o_proj, mlp, embed, lm_head; BERT's
query / key / value) and needs the model's hidden size and (key-value) head counts, read from its config. Runs on
CPU (the package picks its device from torch.cuda.is_available()); no FSDP here (its sharded path all-gathers
block sizes across ranks, not tested with bench's FSDP2).

Estimator: not modelled. Its state is m at the parameter's dtype plus one value per block, which the estimator's
optimizer table (AdamW, bitsandbytes, GaLore) does not describe; bench.estimate refuses it by name."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from bench.methods.full import Full, FullConfig
from bench.methods.interface import ConfigError

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig
    from bench.methods.interface import Terms


class AdamMiniConfig(FullConfig):
    """Full fine-tuning's keys (precision mixed | pure, lr 2e-5); the optimizer is Adam-mini, with the package's
    defaults (betas 0.9, 0.999, eps 1e-8)."""
    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adam_mini",)


def model_shape(model: torch.nn.Module) -> dict[str, int]:
    """dim, n_heads, n_kv_heads for Adam_mini from the model's config (Llama-style or BERT-style names)."""
    config = model.config
    dim = getattr(config, "hidden_size", None)
    heads = getattr(config, "num_attention_heads", None)
    if not dim or not heads:
        raise ConfigError(f"method: adam_mini needs the model's hidden_size and num_attention_heads "
                          f"({type(config).__name__} has neither)")
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return {"dim": int(dim), "n_heads": int(heads), "n_kv_heads": int(kv_heads)}


class AdamMini(Full):
    name = "adam_mini"
    config = AdamMiniConfig
    supports_fsdp = False
    why_not_fsdp = "with fsdp is not supported (Adam-mini's sharded path is not tested with FSDP2 here)"

    def make_optimizer(self, model: torch.nn.Module, cfg: RunConfig) -> Any:
        try:
            from adam_mini import Adam_mini
        except ImportError as exc:
            raise RuntimeError("Adam-mini needs adam-mini: pip install adam-mini") from exc
        from bench.methods.base import trainable

        trainable(model.parameters())
        import torch.distributed as dist

        m = cfg.method
        optimizer = Adam_mini(named_parameters=[(n, p) for n, p in model.named_parameters() if p.requires_grad],
                              lr=m.lr, weight_decay=m.weight_decay, verbose=False, **model_shape(model))
        # adam-mini 1.1.1 takes its world size from torch.cuda.device_count() and then all-gathers across it: a
        # single-process cell on a machine with several GPUs would call collectives with no process group
        optimizer.world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        return optimizer

    def terms(self, cfg: RunConfig) -> Terms | None:
        return None  # Adam-mini's block-wise second moment is not in the estimator's optimizer table


METHOD = AdamMini()

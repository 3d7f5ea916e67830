"""Exact parameter counts of real architectures, built on the meta device (no weight storage): the base model
against published counts and closed forms, and LoRA's trainable count against peft's own count and a closed form
computed from the architecture numbers in conf/model/."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from bench import methods  # noqa: E402

from bench.cell import models
from bench.launch.cli import CONF_DIR  # noqa: E402
from bench.config import ConfigError, build_run_config  # noqa: E402
from bench.trackers.params import count_parameters  # noqa: E402

# peft warns that its Mixtral rank/alpha pattern for gate_up_proj "did not match any targeted module"; it is
# matched as a target *parameter* (the adapters do get rank 2r, as the closed form below checks).
pytestmark = pytest.mark.filterwarnings("ignore:The following (rank|alpha)_pattern keys:RuntimeWarning")

MODELS = ["llama2-7b", "llama2-13b", "llama3-8b", "mistral-7b", "mixtral-8x7b", "llama2-70b"]
# Published totals (the Hugging Face checkpoints' parameter counts).
PUBLISHED_TOTALS = {
    "llama2-7b": 6_738_415_616,
    "llama2-13b": 13_015_864_320,
    "llama3-8b": 8_030_261_248,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "llama2-70b": 68_976_648_192,
}


def make_cfg(model: str, method: str = "lora", **method_overrides):
    raw = {group: yaml.safe_load((CONF_DIR / group / f"{name}.yaml").read_text())
           for group, name in (("method", method), ("model", model), ("task", "synthetic"), ("train", "default"))}
    raw["method"].update(method_overrides)
    raw["device"] = "cpu"
    return build_run_config(raw)


def meta_model(cfg) -> torch.nn.Module:
    return models.build_model(cfg, "cpu", torch.bfloat16, meta=True)


def arch_numbers(cfg) -> dict[str, int]:
    a = cfg.model.arch
    heads = a["num_attention_heads"]
    return {"H": a["hidden_size"], "I": a["intermediate_size"], "L": a["num_hidden_layers"],
            "V": a["vocab_size"], "q_out": heads * a.get("head_dim", a["hidden_size"] // heads),
            "kv_out": a.get("num_key_value_heads", heads) * a.get("head_dim", a["hidden_size"] // heads),
            "E": a.get("num_local_experts", 0), "tied": a.get("tie_word_embeddings", False)}


def closed_form_total(cfg) -> int:
    """Embeddings + LM head + per layer (attention, MLP or experts + router, two RMSNorms) + final norm."""
    n = arch_numbers(cfg)
    H, I, E = n["H"], n["I"], n["E"]
    attn = H * n["q_out"] + 2 * H * n["kv_out"] + n["q_out"] * H
    mlp = E * 3 * H * I + E * H if E else 3 * H * I  # experts (w1, w3, w2) + router, or one SwiGLU MLP
    embeddings = n["V"] * H * (1 if n["tied"] else 2)
    return embeddings + n["L"] * (attn + mlp + 2 * H) + H


def closed_form_lora(cfg) -> int:
    """Trainable LoRA parameters: r * (in + out) for every adapted nn.Linear.

    Mixtral under transformers 5 has no nn.Linear experts: each layer's experts are two fused 3-D parameters,
    mlp.experts.gate_up_proj (E, 2I, H) and mlp.experts.down_proj (E, H, I), and the router mlp.gate is a
    MixtralTopKRouter holding a (E, H) weight. peft (>= 0.18) still resolves "all-linear" on Mixtral to the
    transformers-4 names (w1, w3, w2, gate) and maps them onto those parameters with lora.ParamWrapper, so
    all-linear DOES reach the expert weights: per expert a rank-2r adapter on the fused gate_up_proj
    (E * 2r * (H + 2I)), a rank-r adapter on down_proj (E * r * (I + H)), and a rank-r adapter on the router
    weight (r * (H + E)).
    """
    n = arch_numbers(cfg)
    H, I, E, L = n["H"], n["I"], n["E"], n["L"]
    r = cfg.method.rank
    q, k, v, o = r * (H + n["q_out"]), r * (H + n["kv_out"]), r * (H + n["kv_out"]), r * (n["q_out"] + H)
    targets = cfg.method.target_module_list()
    if targets == ["q_proj", "v_proj"]:
        return L * (q + v)
    assert targets == ["all-linear"]
    if E:
        mlp = E * 2 * r * (H + 2 * I) + E * r * (I + H) + r * (H + E)
    else:
        mlp = 2 * r * (H + I) + r * (I + H)  # gate_proj, up_proj: H -> I; down_proj: I -> H
    return L * (q + k + v + o + mlp)


def test_llama2_7b_qv_r8_closed_form_matches_the_hand_count():
    cfg = make_cfg("llama2-7b", target_modules="qv", rank=8)
    assert closed_form_lora(cfg) == 32 * 2 * 8 * (4096 + 4096) == 4_194_304


@pytest.mark.parametrize("model", MODELS)
def test_base_total_matches_published_count(model):
    cfg = make_cfg(model)
    net = meta_model(cfg)
    assert all(p.device.type == "meta" for p in net.parameters())
    counts = count_parameters(net)
    assert counts["total"] == PUBLISHED_TOTALS[model]
    assert counts["total"] == closed_form_total(cfg)
    assert counts["trainable"] == counts["total"]  # nothing frozen before the method wraps it


@pytest.mark.parametrize("rank", [8, 16, 64])
@pytest.mark.parametrize("targets", ["qv", "all-linear"])
@pytest.mark.parametrize("model", MODELS)
def test_lora_trainable_count_matches_peft_and_closed_form(model, targets, rank):
    # ParamWrapper (Mixtral's expert/router parameters under all-linear) refuses lora_dropout != 0, see
    # test_mixtral_all_linear_with_default_dropout; dropout does not change any count.
    cfg = make_cfg(model, target_modules=targets, rank=rank, dropout=0.0)
    net = meta_model(cfg)
    base_total = count_parameters(net)["total"]
    # bench.cell.runner.plan wraps with the CPU as default device: peft then creates and kaiming-initialises every
    # adapter in real memory before moving it to the meta base layer (~11 s and ~1.5 GB for Mixtral
    # all-linear r=64). Creating them on the meta device gives the same modules and counts at no cost.
    with torch.device("meta"):
        net = methods.get("lora").wrap(net, cfg)
    counts = count_parameters(net)
    peft_trainable, peft_total = net.get_nb_trainable_parameters()
    assert counts["trainable"] == peft_trainable
    assert counts["trainable"] == closed_form_lora(cfg)
    assert counts["total"] == peft_total == base_total + peft_trainable
    assert 0 < counts["trainable_pct"] < 100
    if model == "mixtral-8x7b" and targets == "all-linear":
        trainable = [n for n, p in net.named_parameters() if p.requires_grad]
        assert any(".mlp.experts." in n for n in trainable)  # the experts are adapted
        assert any(".mlp.gate.lora_" in n for n in trainable)  # and so is the router


def test_count_through_bench_wrap_exactly_as_plan_calls_it():
    """No meta default device here: the same call sequence as bench.cell.runner.plan, on a cheap combination."""
    cfg = make_cfg("llama2-7b", target_modules="qv", rank=8)
    net = methods.get("lora").wrap(meta_model(cfg), cfg)
    assert all(p.device.type == "meta" for p in net.parameters())
    assert count_parameters(net)["trainable"] == net.get_nb_trainable_parameters()[0] == 4_194_304


@pytest.mark.parametrize("method", ["lora"])  # qlora is refused on fused experts before its dropout is read
def test_mixtral_all_linear_with_default_dropout(method):
    cfg = make_cfg("mixtral-8x7b", method=method, target_modules="all-linear", rank=8)
    assert cfg.method.dropout > 0  # the method's own default
    # peft's ParamWrapper (fused experts) refuses dropout: reported as bad input naming the key, not a crash
    with pytest.raises(ConfigError, match=r"^method\.dropout must be 0"):
        with torch.device("meta"):
            methods.get(method).wrap(meta_model(cfg), cfg)

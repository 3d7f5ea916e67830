"""Each fine-tuning method trains a few optimizer steps of the `tiny` model on CPU and changes exactly what it
should: LoRA / QLoRA only their adapters (the base bit-identical, a quantised base still quantised), GaLore and
full fine-tuning every weight. Then one end-to-end cell per method through bench.cell.runner.run_cell."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import re  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from bench import methods  # noqa: E402

from bench.cell import models
from bench.launch.cli import CONF_DIR  # noqa: E402
from bench.config import build_run_config  # noqa: E402
from bench.trackers.params import count_parameters  # noqa: E402

SMALL_TRAIN = {"steps": 3, "warmup_steps": 1, "batch_size": 2, "seq_len": 32, "grad_accum": 1, "seed": 0,
               "precision": "auto", "gradient_checkpointing": False}
TINY_LAYERS = 4  # conf/model/tiny.yaml num_hidden_layers
LINEARS_PER_LAYER = 7  # q, k, v, o, gate, up, down
# nn.Linear modules of a Llama decoder layer (what GaLore projects and QLoRA quantises)
LAYER_LINEAR = re.compile(r"(^|\.)layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)$")


def raw_config(method: str, model: str = "tiny", **method_overrides) -> dict:
    """The plain mapping Hydra would compose from conf/, with small train settings, on the CPU."""
    raw = {group: yaml.safe_load((CONF_DIR / group / f"{name}.yaml").read_text())
           for group, name in (("method", method), ("model", model), ("task", "synthetic"), ("train", "default"))}
    raw["train"].update(SMALL_TRAIN)
    raw["method"].update(method_overrides)
    raw.update(device="cpu")
    return raw


def make_cfg(method: str, **method_overrides):
    return build_run_config(raw_config(method, **method_overrides))


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality of the stored bytes (torch.equal would call 0.0 and -0.0 equal)."""
    a, b = (t.as_subclass(torch.Tensor).contiguous() for t in (a, b))  # plain tensors, not bnb subclasses
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def changed_names(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, p in model.named_parameters() if not same_bits(before[name], p.detach())}


def train(cfg):
    """The sequence of bench.cell.runner._measure without the trackers: build, wrap, optimizer, train_steps."""
    from bench.tasks import synthetic
    from bench.cell.step_loop import train_steps

    method = methods.get(cfg.method.name)
    t = cfg.train
    compute = models.train_dtype(t.precision, "cpu")
    torch.manual_seed(t.seed)
    model = models.build_model(cfg, "cpu", method.weights_dtype(cfg, compute))
    model = method.wrap(model, cfg)
    optimizer = method.make_optimizer(model, cfg)
    before = snapshot(model)
    data = synthetic.batches(model.config.vocab_size, t.batch_size, t.seq_len, "cpu", t.seed)
    result = train_steps(model, optimizer, data, steps=t.steps, warmup_steps=t.warmup_steps,
                         grad_accum=t.grad_accum, device="cpu", autocast_dtype=method.autocast_dtype(cfg, compute))
    assert len(result.losses) == t.steps
    assert all(torch.isfinite(torch.tensor(result.losses)))
    return model, optimizer, before


def base_param_count() -> int:
    """Parameters of the plain tiny model (no adapters, nothing quantised)."""
    return count_parameters(models.build_model(make_cfg("full"), "cpu", torch.float32, meta=True))["total"]


# ---------------------------------------------------------------------------------------------- LoRA

def test_lora_trains_only_the_adapters():
    cfg = make_cfg("lora", target_modules="qv", rank=8, lr=1e-3)
    model, _, before = train(cfg)
    names = [n for n, _ in model.named_parameters()]
    adapters = {n for n in names if ".lora_A." in n or ".lora_B." in n}
    # q_proj and v_proj of every layer, one A and one B each
    assert len(adapters) == TINY_LAYERS * 2 * 2
    assert all(re.search(r"\.(q|v)_proj\.lora_[AB]\.default\.weight$", n) for n in adapters)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == adapters
    # every adapter moved (B from its zero init on step 1, A once B is non-zero); every base weight bit-identical
    assert changed_names(model, before) == adapters
    counts = count_parameters(model)
    assert counts["trainable"] == model.get_nb_trainable_parameters()[0]
    assert counts["total"] == model.get_nb_trainable_parameters()[1]
    # closed form: r * (in + out) per adapted linear, q and v are 256 -> 256 in tiny
    assert counts["trainable"] == TINY_LAYERS * 2 * 8 * (256 + 256)
    assert counts["total"] == base_param_count() + counts["trainable"]


# --------------------------------------------------------------------------------------------- QLoRA

@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_keeps_the_quantised_base_frozen_and_trains_the_adapters(bits):
    bnb = models.import_bitsandbytes()
    cfg = make_cfg("qlora", base_bits=bits, lr=1e-3)  # defaults: all-linear, r=64, nf4 + double quant, bf16
    method = methods.get("qlora")
    model, _, before = train(cfg)

    linear_cls, param_cls = ((bnb.nn.Linear4bit, bnb.nn.Params4bit) if bits == 4
                             else (bnb.nn.Linear8bitLt, bnb.nn.Int8Params))
    quantised = {name: module for name, module in model.named_modules() if isinstance(module, linear_cls)}
    assert len(quantised) == TINY_LAYERS * LINEARS_PER_LAYER
    assert all(name.endswith(".base_layer") and LAYER_LINEAR.search(name.removesuffix(".base_layer"))
               for name in quantised)
    for name, module in quantised.items():
        weight = module.weight
        assert type(weight) is param_cls, name
        assert weight.requires_grad is False, name
        if bits == 4:
            assert weight.bnb_quantized is True and weight.dtype == torch.uint8, name
            assert weight.quant_type == cfg.method.quant_type
            assert weight.numel() * 2 == module.in_features * module.out_features  # two values per byte
        else:
            assert weight.dtype == torch.int8 and weight.shape == (module.out_features, module.in_features)

    names = [n for n, _ in model.named_parameters()]
    adapters = {n for n in names if ".lora_A." in n or ".lora_B." in n}
    assert len(adapters) == TINY_LAYERS * LINEARS_PER_LAYER * 2
    assert {n for n, p in model.named_parameters() if p.requires_grad} == adapters
    # only the adapters moved: quantised bytes, embeddings, norms and lm_head are bit-identical
    assert changed_names(model, before) == adapters

    counts = count_parameters(model)
    peft_trainable, peft_total = model.get_nb_trainable_parameters()
    assert counts["trainable"] == peft_trainable
    # all-linear at r=64 on tiny: q,k,v,o are 256 -> 256; gate and up 256 -> 688; down 688 -> 256
    r = cfg.method.rank
    assert peft_trainable == TINY_LAYERS * r * (4 * (256 + 256) + 3 * (256 + 688))
    # a 4-bit weight is counted as the values it holds, not the packed bytes: same total as unquantised
    assert counts["total"] == base_param_count() + peft_trainable
    logical = sum(m.in_features * m.out_features for m in quantised.values())
    label = f"4bit-{cfg.method.quant_type}" if bits == 4 else "int8"
    assert counts["by_dtype"][label] == logical
    if bits == 4:
        assert peft_total == counts["total"]  # peft also unpacks Params4bit
    assert method.autocast_dtype(cfg, torch.float32) is None


# -------------------------------------------------------------------------------------------- GaLore

def galore_cfg(**overrides):
    return make_cfg("galore", **{"rank": 8, "update_proj_gap": 1, "lr": 1e-3, **overrides})


def expected_projected(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [m.weight for name, m in model.named_modules()
            if type(m) is torch.nn.Linear and LAYER_LINEAR.search(name)]


def test_galore_projects_exactly_the_attention_and_mlp_linear_weights():
    from bench.methods.galore import projected_params

    cfg = galore_cfg()
    model = models.build_model(cfg, "cpu", torch.float32, meta=True)
    projected = projected_params(model, cfg)
    expected = expected_projected(model)
    assert len(expected) == TINY_LAYERS * LINEARS_PER_LAYER
    assert {id(p) for p in projected} == {id(p) for p in expected}
    assert len(projected) == len(expected)
    assert all(p.dim() == 2 for p in projected)
    # embeddings, lm_head and norms are not projected
    lm_head = model.get_output_embeddings().weight
    assert id(lm_head) not in {id(p) for p in projected}


def low_rank_shape(shape: torch.Size, rank: int) -> tuple[int, int]:
    """galore-torch proj_type=std: project on the right (m x r) when m >= n, else on the left (r x n)."""
    m, n = shape
    return (m, rank) if m >= n else (rank, n)


@pytest.mark.parametrize("optimizer,layerwise,rank", [
    ("adamw", False, 8),
    # rank 16: every projected gradient has >= 4096 values, so bitsandbytes takes its 8-bit path for all
    # of them; see test_galore_adamw8bit_trains_small_projected_weights for rank 8
    ("adamw8bit", False, 16),
    ("adamw", True, 8),
], ids=["adamw", "adamw8bit", "layerwise"])
def test_galore_updates_every_parameter(optimizer, layerwise, rank):
    from bench.methods.galore import projected_params

    cfg = galore_cfg(optimizer=optimizer, layerwise=layerwise, rank=rank)
    model, optimizer_obj, before = train(cfg)
    names = {n for n, _ in model.named_parameters()}
    assert all(p.requires_grad for p in model.parameters())
    assert changed_names(model, before) == names

    projected = projected_params(model, cfg)
    projected_ids = {id(p) for p in projected}
    if layerwise:
        from bench.methods.base import SteppedInBackward

        assert isinstance(optimizer_obj, SteppedInBackward)
        assert {id(p) for p in optimizer_obj.per_param} == {id(p) for p in model.parameters()}
        for p, opt in optimizer_obj.per_param.items():
            (group,) = opt.param_groups
            assert ("rank" in group) == (id(p) in projected_ids)
        return
    state = optimizer_obj.state
    regular_group, galore_group = optimizer_obj.param_groups
    assert {id(p) for p in galore_group["params"]} == projected_ids
    assert galore_group["rank"] == rank and "rank" not in regular_group
    for p in projected:
        st = state[p]
        assert st["projector"].rank == rank
        if optimizer == "adamw":
            # galore-torch AdamW keeps Adam's moments of the projected gradient: low rank, fp32
            assert tuple(st["exp_avg"].shape) == low_rank_shape(p.shape, rank)
            assert tuple(st["exp_avg_sq"].shape) == low_rank_shape(p.shape, rank)
        else:
            # bitsandbytes 2-state (state1/state2) at the low-rank shape, 8-bit here (>= min_8bit_size values)
            assert tuple(st["state1"].shape) == low_rank_shape(p.shape, rank)
            assert st["state1"].dtype == torch.uint8 and st["state2"].dtype == torch.uint8
    embed = model.get_input_embeddings().weight
    moments = state[embed]["exp_avg"] if optimizer == "adamw" else state[embed]["state1"]
    assert moments.shape == embed.shape  # unprojected parameters keep full-size states


# galore-torch 1.0's GaLoreAdamW8bit passes percentile_clipping/block_wise into bitsandbytes' max_unorm/
# skip_zeros slots; without bench's correction, projected gradients under 4096 values (tiny's attention at
# rank 8: 256x8) get update-norm clipping against GaLore's zeroed weights, i.e. exactly zero updates.
def test_galore_adamw8bit_trains_small_projected_weights():
    cfg = galore_cfg(optimizer="adamw8bit", rank=8)
    model, _, before = train(cfg)
    unchanged = {n for n, _ in model.named_parameters()} - changed_names(model, before)
    assert unchanged == set()


# ---------------------------------------------------------------------------------------------- Full

@pytest.mark.parametrize("optimizer", ["adamw", "adamw8bit"])
def test_full_updates_every_parameter(optimizer):
    cfg = make_cfg("full", optimizer=optimizer, lr=1e-3)
    model, _, before = train(cfg)
    assert all(p.requires_grad and p.dtype == torch.float32 for p in model.parameters())  # mixed: fp32 master
    assert changed_names(model, before) == {n for n, _ in model.named_parameters()}
    counts = count_parameters(model)
    assert counts["trainable"] == counts["total"] == base_param_count()
    assert counts["trainable_pct"] == 100.0


# ------------------------------------------------------------------------------------ end to end (run_cell)

@pytest.mark.parametrize("method", ["full", "lora", "qlora", "galore"])
def test_run_cell_writes_a_successful_record(method, tmp_path):
    from bench.cell.runner import run_cell
    from bench.record import read_record

    raw = raw_config(method)
    raw["results_dir"] = str(tmp_path)
    cfg = build_run_config(raw)
    record, path = run_cell(cfg)
    assert record["status"] == "success", record.get("error")
    assert path.is_file() and tmp_path in path.parents
    assert read_record(path) == record  # JSON round trip (no NaN, nothing lost)

    assert record["memory"]["peak_bytes"] > 0
    timing = record["timing"]
    t = cfg.train
    assert timing["measured_steps"] == t.steps - t.warmup_steps == len(timing["step_times_s"])
    assert len(timing["warmup_step_times_s"]) == t.warmup_steps  # one-off costs (GaLore's first SVDs) kept apart
    assert sum(timing["warmup_step_times_s"]) <= timing["train_seconds_with_warmup"] - timing["train_seconds"]
    assert timing["steps_per_s"] > 0
    assert timing["steps_per_s"] == pytest.approx(timing["measured_steps"] / sum(timing["step_times_s"]))
    assert timing["tokens_per_s"] == pytest.approx(timing["steps_per_s"] * t.batch_size * t.seq_len * t.grad_accum)
    assert len(record["losses"]) == t.steps

    params = record["params"]
    assert 0 < params["trainable_pct"] <= 100
    assert params["trainable"] <= params["total"]
    if method in ("full", "galore"):
        assert params["trainable_pct"] == 100.0
    else:
        assert params["trainable_pct"] < 100.0
    assert record["env"]["packages"]["torch"]

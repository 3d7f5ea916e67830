"""The LoRA family and the optimizers added as method plug-ins (one module + one YAML each), on CPU: each that
runs on CPU trains `tiny` in a cell and writes a success record, and the thing it claims is actually on (rsLoRA's
scaling, PiSSA's / OLoRA's modified base, LoRA+'s two learning rates, Adam-mini's smaller state, APOLLO's and
Q-GaLore's low-rank / INT4 states). LoftQ (GPU-only) is refused on CPU with one line and exit 2. The estimator
predicts the exact deltas of LoRA as LoRA and refuses the optimizers it does not model, by name, in one line."""
from __future__ import annotations

import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from bench import methods  # noqa: E402
from bench.cell import models  # noqa: E402
from bench.config import build_run_config  # noqa: E402
from bench.launch.cli import CONF_DIR  # noqa: E402

CPU_METHODS = ["rslora", "olora", "pissa", "loraplus", "adam_mini", "apollo", "apollo_mini", "q_galore"]
GPU_ONLY = ["loftq"]
FULL_WEIGHT = {"adam_mini", "apollo", "apollo_mini", "q_galore"}
# ranks that fit tiny's 256-wide projections and keep the test short (the YAMLs hold the authors' defaults);
# Q-GaLore's SVDs (one per projected weight, ~1 s each for 256 x 688 on a loaded 2-core runner): q_proj only
SMALL = {"pissa": {"rank": 8, "alpha": 8}, "apollo": {"rank": 8},
         "q_galore": {"rank": 16, "target_modules": "q_proj"}}


def raw_config(method: str, **method_overrides) -> dict:
    raw = {group: yaml.safe_load((CONF_DIR / group / f"{name}.yaml").read_text())
           for group, name in (("method", method), ("model", "tiny"), ("task", "synthetic"), ("train", "default"))}
    raw["train"].update(steps=2, warmup_steps=1, batch_size=1, seq_len=16, grad_accum=1, seed=0,
                        gradient_checkpointing=False)
    raw["method"].update({**SMALL.get(method, {}), **method_overrides})
    raw["device"] = "cpu"
    return raw


def make_cfg(method: str, **method_overrides):
    return build_run_config(raw_config(method, **method_overrides))


def wrapped(method: str, meta: bool = False, **method_overrides):
    cfg = make_cfg(method, **method_overrides)
    torch.manual_seed(0)
    plain = models.build_model(cfg, "cpu", torch.float32, meta=meta)
    original = {n: p.detach().clone() for n, p in plain.named_parameters()} if not meta else {}
    return cfg, methods.get(method).wrap(plain, cfg), original


def one_step(model: torch.nn.Module, optimizer) -> None:
    ids = torch.randint(0, model.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()


def state_bytes(optimizer) -> int:
    return sum(t.numel() * t.element_size() for state in optimizer.state.values() for t in state.values()
               if isinstance(t, torch.Tensor))


# ------------------------------------------------------------------------------- every CPU method: a record

@pytest.mark.parametrize("method", CPU_METHODS)
def test_cpu_method_cell_writes_a_success_record(method, tmp_path):
    from bench.cell.runner import run_cell
    from bench.record import read_record

    raw = raw_config(method)
    raw["results_dir"] = str(tmp_path)
    record, path = run_cell(build_run_config(raw))
    assert record["status"] == "success", record.get("error")
    assert read_record(path) == record and tmp_path in path.parents
    assert record["config"]["method"]["name"] == method
    assert record["timing"]["steps_per_s"] > 0 and len(record["losses"]) == 2
    assert all(math.isfinite(x) for x in record["losses"])
    pct = record["params"]["trainable_pct"]
    assert pct == 100.0 if method in FULL_WEIGHT else 0 < pct < 100


# --------------------------------------------------------------------------------- the LoRA family (peft)

def lora_layers(model: torch.nn.Module) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def test_cpu_rslora_scales_adapters_by_alpha_over_sqrt_rank():
    cfg, model, _ = wrapped("rslora", meta=True, rank=16, alpha=16)
    assert model.peft_config["default"].use_rslora is True
    layers = lora_layers(model)
    assert len(layers) == 4 * 2  # q and v of tiny's 4 layers
    assert {layer.scaling["default"] for layer in layers} == {16 / math.sqrt(16)}  # 4.0; LoRA's would be 1.0
    _, lora, _ = wrapped("lora", meta=True, rank=16, alpha=16)
    assert {layer.scaling["default"] for layer in lora_layers(lora)} == {1.0}


@pytest.mark.parametrize("method", ["pissa", "olora"])
def test_cpu_init_variant_moves_the_base_and_keeps_the_model_at_step_0(method):
    """PiSSA / OLoRA write W - s B A into the base and start B A non-zero: base + s B A is the original weight."""
    cfg, model, original = wrapped(method, target_modules="qv")
    layers = lora_layers(model)
    assert len(layers) == 4 * 2
    for layer in layers:
        name = next(n for n, m in model.named_modules() if m is layer)
        key = name.split("base_model.model.", 1)[-1] + ".weight"
        w0, base = original[key], layer.base_layer.weight.detach()
        a, b = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach()
        assert b.abs().max() > 0  # LoRA starts B at zero; these start in the weight's own subspace
        assert (base - w0).abs().max() > 1e-4  # the base itself changed
        torch.testing.assert_close(base + layer.scaling["default"] * b @ a, w0, atol=1e-5, rtol=1e-4)


def test_cpu_loraplus_gives_b_ratio_times_the_learning_rate_of_a():
    cfg, model, _ = wrapped("loraplus", meta=True, lr=1e-4, lr_ratio=16)
    optimizer = methods.get("loraplus").make_optimizer(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    lrs: dict[str, set[float]] = {"lora_A": set(), "lora_B": set()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            lrs["lora_A" if ".lora_A." in names[id(p)] else "lora_B"].add(group["lr"])
    assert lrs["lora_A"] == {1e-4} and len(lrs["lora_B"]) == 1
    assert lrs["lora_B"].pop() == pytest.approx(16 * 1e-4)
    counted = sum(len(g["params"]) for g in optimizer.param_groups)
    assert counted == sum(p.requires_grad for p in model.parameters()) == 4 * 2 * 2


def test_cpu_loftq_is_refused_on_cpu_in_one_line(tmp_path):
    """In the cell, before anything is loaded: bench.run turns the ConfigError into its one line and exit 2
    (`python -m bench.run method=loftq device=cpu` -> "bench.run: error: method: loftq runs on CUDA only ...")."""
    from bench.cell.runner import run_cell
    from bench.config import ConfigError

    assert methods.get("loftq").needs_gpu
    raw = raw_config("loftq")
    raw["results_dir"] = str(tmp_path)
    with pytest.raises(ConfigError) as refused:
        run_cell(build_run_config(raw))
    assert str(refused.value).startswith("method: loftq runs on CUDA only (") and "\n" not in str(refused.value)
    assert not any(tmp_path.rglob("*"))


# -------------------------------------------------------------------------------------- the optimizers

def test_cpu_adam_mini_keeps_about_half_of_adamws_state():
    cfg, model, _ = wrapped("adam_mini")
    mini = methods.get("adam_mini").make_optimizer(model, cfg)
    one_step(model, mini)
    adamw = torch.optim.AdamW([p for p in model.parameters()], lr=1e-5)
    adamw.step()  # same gradients: AdamW's two full-size moments
    mini_bytes, adamw_bytes = state_bytes(mini), state_bytes(adamw)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert adamw_bytes >= 2 * params
    assert params <= mini_bytes < 0.51 * adamw_bytes  # m per value, v per block
    q = model.model.layers[0].self_attn.q_proj.weight
    assert mini.state[q]["vmean"].numel() == model.config.num_attention_heads  # one v per head


@pytest.mark.parametrize("method,rank", [("apollo", 8), ("apollo_mini", 1)])
def test_cpu_apollo_keeps_rank_r_moments_and_updates_every_weight(method, rank):
    from bench.methods.galore import projected_params

    cfg, model, _ = wrapped(method, rank=rank, lr=1e-3)
    optimizer = methods.get(method).make_optimizer(model, cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    one_step(model, optimizer)
    projected = projected_params(model, cfg)
    assert len(projected) == 4 * 7
    for p in projected:
        m, n = p.shape
        expected = (m, rank) if m >= n else (rank, n)  # std projection: the smaller side reduced to r
        assert tuple(optimizer.state[p]["exp_avg"].shape) == expected
        assert tuple(optimizer.state[p]["exp_avg_sq"].shape) == expected
    group = optimizer.param_groups[1]
    assert group["scale_type"] == ("tensor" if method == "apollo_mini" else "channel") and group["proj"] == "random"
    assert all(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters())


def test_cpu_q_galore_stores_int4_projections_and_8bit_states():
    from bench.methods.galore import projected_params

    cfg, model, _ = wrapped("q_galore", lr=1e-3)  # rank 16: every projected gradient has >= 4096 values
    optimizer = methods.get("q_galore").make_optimizer(model, cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    one_step(model, optimizer)
    projected = projected_params(model, cfg)
    assert len(projected) == 4  # q_proj of each layer
    for p in projected:
        st = optimizer.state[p]
        projector = st["projector"]
        assert projector.ortho_matrix.dtype == torch.uint8 and int(projector.ortho_matrix.max()) <= 15  # INT4
        assert projector.ortho_matrix.numel() == 16 * min(p.shape)
        assert st["state1"].dtype == torch.uint8 and st["state1"].numel() == 16 * max(p.shape)
    assert all(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters())


# ------------------------------------------------------------------------------------------ the estimator

def estimate_json(capsys, *overrides: str) -> list[dict]:
    from bench.estimate.__main__ import main

    main([*overrides, "model=tiny", "gpu=h100", "--json", "-"])
    return json.loads(capsys.readouterr().out)


EXACT_DELTAS = ["rslora", "olora", "loraplus", "loftq"]


@pytest.mark.parametrize("method", EXACT_DELTAS)
def test_cpu_estimator_predicts_an_init_or_scaling_variant_exactly_as_lora(method, capsys):
    """rsLoRA (a scalar), OLoRA / LoftQ (an init), LoRA+ (lr groups): LoRA's shapes, so every predicted byte and
    FLOP equals LoRA's at the same rank, targets and dropout (loftq's own defaults differ: set to LoRA's here)."""
    same = ["method.rank=8", "method.alpha=16", "method.target_modules=qv", "method.dropout=0.05"]
    (variant,) = estimate_json(capsys, f"method={method}", *same)
    (lora,) = estimate_json(capsys, "method=lora", *same)
    numbers = [k for k in lora if k.endswith("_bytes") or "flop" in k.lower()]
    assert "peak_bytes" in numbers and variant["method"] == method
    assert {k: variant.get(k) for k in numbers} == {k: lora[k] for k in numbers}


@pytest.mark.parametrize("method", ["adam_mini", "apollo", "apollo_mini", "q_galore"])
def test_cpu_estimator_refuses_an_unmodelled_optimizer_in_one_line(method, capsys):
    from bench.estimate.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main([f"method={method}", "model=7b"])
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1] == f"bench.estimate: error: bench.estimate does not model method {method!r} (it gives no " \
                      f"estimator terms)"

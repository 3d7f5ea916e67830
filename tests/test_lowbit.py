"""Lower-bit bases (issue 17), on CPU: HQQ 2/3-bit and torchao int8 weight-only bases train LoRA adapters on `tiny`
and write a success record, the base stays quantised and frozen; a quantised-base method refuses a model with fused
3-D experts (one line, before any work, in the cell's plan and in bench.estimate alike); bench.estimate refuses the
methods it does not model with one line.

bench.cell.models builds a quantised base through the method's `quantized_linear` hook when the method has one
(HQQ, torchao); `method_quantiser` below routes it there for these tests in case models.py still calls
bitsandbytes for every quantised base."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from bench import methods  # noqa: E402
from bench.cell import models  # noqa: E402
from bench.config import ConfigError, build_run_config  # noqa: E402
from conftest import compose_raw  # noqa: E402
from test_methods_cpu import LAYER_LINEAR, LINEARS_PER_LAYER, TINY_LAYERS, changed_names, make_cfg, raw_config  # noqa: E402

pytest.importorskip("hqq", reason="pip install 'finetune-bench[lowbit]' (hqq)")
pytest.importorskip("torchao", reason="pip install 'finetune-bench[lowbit]' (torchao)")

# a 4-expert Mixtral small enough to build on meta in milliseconds (tests/test_estimate.py's MOE)
MOE = ["model=8x7b", "model.arch.hidden_size=64", "model.arch.intermediate_size=96", "model.arch.num_hidden_layers=2",
       "model.arch.num_attention_heads=4", "model.arch.num_key_value_heads=2", "model.arch.vocab_size=256",
       "model.arch.num_local_experts=4", "method.dropout=0"]


@pytest.fixture(autouse=True)
def method_quantiser(monkeypatch):
    bnb_linear = models.quantized_linear

    def quantized_linear(child, cfg, device, std):
        own = getattr(methods.get(cfg.method.name), "quantized_linear", None)
        return own(child, cfg, device, std) if own else bnb_linear(child, cfg, device, std)

    monkeypatch.setattr(models, "quantized_linear", quantized_linear)


def small(method: str, **overrides):
    return make_cfg(method, rank=8, lr=1e-2, gradient_checkpointing=False, **overrides)


def trained(cfg):
    from test_methods_cpu import train

    model, _, before = train(cfg)
    return model, before


def test_hqq_2bit_base_stays_packed_and_frozen_while_the_adapters_train():
    cfg = small("hqq")
    assert (cfg.method.base_bits, cfg.method.group_size) == (2, 16)  # conf/method/hqq.yaml
    model, before = trained(cfg)
    quantised = {n: m for n, m in model.named_modules() if type(m).__name__ == "HQQLinear"}
    assert len(quantised) == TINY_LAYERS * LINEARS_PER_LAYER  # every block linear, never lm_head
    assert all(LAYER_LINEAR.search(n.removesuffix(".base_layer")) for n in quantised)
    for name, layer in quantised.items():
        w = layer.W_q
        assert w.dtype == torch.uint8 and not w.requires_grad, name
        rows, cols = layer.meta["shape"]
        assert w.numel() * 4 == rows * cols  # four 2-bit values per byte
        assert layer.meta["nbits"] == 2 and layer.meta["group_size"] == 16
    adapters = {n for n, _ in model.named_parameters() if ".lora_A." in n or ".lora_B." in n}
    assert len(adapters) == TINY_LAYERS * LINEARS_PER_LAYER * 2
    assert {n for n, p in model.named_parameters() if p.requires_grad} == adapters
    assert changed_names(model, before) == adapters  # only the adapters moved: packed bytes bit-identical


def test_hqq_3bit_quantises_closer_than_2bit():
    """One layer through the method's hook at each width: the dequantised weight is the layer's shape, and 3 bits
    (groups of 64) reconstruct a random weight better than 2 bits (groups of 16), neither exactly."""
    torch.manual_seed(0)
    meta = torch.nn.Linear(256, 128, bias=False, device="meta")
    errors = {}
    for method in ("hqq", "hqq3"):
        cfg = build_run_config(compose_raw("device=cpu", f"method={method}"))  # hqq3.yaml: Hydra defaults
        torch.manual_seed(1)
        reference = models.random_tensor((128, 256), torch.float32, "cpu", 0.02, "weight")
        torch.manual_seed(1)
        layer = methods.get("hqq").quantized_linear(meta, cfg, "cpu", 0.02)
        deq = layer.dequantize().reshape(128, 256)
        errors[cfg.method.base_bits] = float((deq - reference).pow(2).mean() / reference.pow(2).mean())
    assert 0 < errors[3] < errors[2] < 1, errors


def test_torchao_int8_layer_holds_int8_rows_and_dequantises_close():
    """One layer through the method's hook: an int8 weight with one scale per output row, frozen, whose dequantised
    values are within half a quantisation step of the random weight it was made from (and not equal to it)."""
    meta = torch.nn.Linear(256, 128, bias=False, device="meta")
    torch.manual_seed(1)
    reference = models.random_tensor((128, 256), torch.float32, "cpu", 0.02, "weight")
    torch.manual_seed(1)
    layer = methods.get("torchao_int8").quantized_linear(meta, make_cfg("torchao_int8"), "cpu", 0.02)
    w = layer.weight
    assert type(w).__name__ == "Int8Tensor" and not w.requires_grad
    assert w.qdata.dtype == torch.int8 and tuple(w.qdata.shape) == (128, 256)
    assert w.scale.numel() == 128  # per row
    error = (w.dequantize() - reference).abs()
    assert 0 < error.max() <= 0.5 * w.scale.max() * 1.001


@pytest.mark.parametrize("method", ["hqq", "torchao_int8"])
def test_run_cell_writes_a_success_record(method, tmp_path):
    from bench.cell.runner import run_cell

    raw = raw_config(method, rank=8, gradient_checkpointing=False)
    raw["results_dir"] = str(tmp_path)
    record, path = run_cell(build_run_config(raw))
    assert record["status"] == "success", record.get("error")
    assert path.is_file()
    assert record["cell"]["method"] == method and record["cell"]["bits"] == {"hqq": 2, "torchao_int8": 8}[method]
    assert len(record["losses"]) == raw["train"]["steps"] and record["timing"]["steps_per_s"] > 0
    assert record["preflight"]["fits"] is None  # not modelled: no check, and a note saying so
    assert any("does not model" in n for n in record["preflight"]["notes"])


@pytest.mark.parametrize("method", ["qlora", "hqq", "torchao_int8"])
def test_quantised_base_refuses_fused_experts_before_any_work(method):
    cfg = build_run_config(compose_raw("device=cpu", f"method={method}", *MOE))
    meta = models.build_model(cfg, "cpu", torch.float32, meta=True)
    with pytest.raises(ConfigError, match=r"^method: .* fused 3-D expert tensors.*different method"):
        methods.get(method).wrap(meta, cfg)
    methods.get("lora").wrap(meta, build_run_config(compose_raw("device=cpu", "method=lora", *MOE)))  # LoRA runs


@pytest.mark.parametrize("args, says", [
    (["method=qlora", "model=8x7b", "method.dropout=0"], "keeps its experts in fused 3-D tensors"),
    (["method=hqq", "model=7b"], "does not model method 'hqq'"),
    (["method=hqq3", "model=7b"], "does not model method 'hqq'"),
    (["method=torchao_int8", "model=7b"], "does not model method 'torchao_int8'"),
])
def test_estimate_refuses_with_one_line(args, says, capsys):
    from bench.estimate.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and says in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("method, key, value", [("hqq", "base_bits", 5), ("hqq", "group_size", 12),
                                                ("torchao_int8", "base_bits", 4)])
def test_bad_lowbit_settings_name_the_key(method, key, value):
    with pytest.raises(ConfigError, match=rf"^method\.{key} "):
        make_cfg(method, **{key: value})


def test_hqq_pretrained_on_cpu_is_refused_with_one_line():
    cfg = build_run_config(compose_raw("device=cpu", "method=hqq", "model=minilm"))
    assert cfg.model.pretrained
    with pytest.raises(ConfigError, match=r"^method: hqq runs on CUDA only \(transformers' HqqConfig"):
        methods.get("hqq").autocast_dtype(cfg, torch.float32)

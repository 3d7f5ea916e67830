"""The method interface (bench/methods/interface.py), on CPU: methods are discovered from their modules without
torch, the estimator refuses a method that gives no estimator terms, and DoRA, added as one module plus one
YAML, trains on `tiny` and is counted by the estimator exactly as peft counts it."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from bench import methods  # noqa: E402
from bench.cell import models  # noqa: E402
from bench.config import ConfigError, build_run_config  # noqa: E402
from bench.launch.cli import CONF_DIR  # noqa: E402
from bench.methods.lora import Lora  # noqa: E402


def make_cfg(method: str, model: str = "tiny", **method_overrides):
    raw = {group: yaml.safe_load((CONF_DIR / group / f"{name}.yaml").read_text())
           for group, name in (("method", method), ("model", model), ("task", "synthetic"), ("train", "default"))}
    raw["train"].update(steps=3, warmup_steps=1, batch_size=2, seq_len=16, grad_accum=1, seed=0)
    raw["method"].update(method_overrides)
    raw["device"] = "cpu"
    return build_run_config(raw)


def test_cpu_registry_discovers_every_method_module_without_torch():
    code = ("import sys, bench.config as c; assert 'torch' not in sys.modules, 'torch imported';"
            "print(','.join(c.METHODS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ("full,lora,qlora,galore,adam_mini,apollo,apollo_mini,dora,hqq,loftq,loraplus,olora,pissa,q_galore,"
                   "rslora,torchao_int8")
    for name in out.split(","):  # every method has a preset YAML whose `name:` selects it
        assert yaml.safe_load((CONF_DIR / "method" / f"{name}.yaml").read_text())["name"] == name
        assert methods.get(name).config.__name__.endswith("Config")


class NoEstimate(Lora):
    name = "noestimate"  # a LoRA variant that did not declare what it costs: LoRA's terms must not be used


def test_cpu_estimator_refuses_a_method_without_terms(monkeypatch, capsys):
    monkeypatch.setitem(methods.registry(), "noestimate", NoEstimate())
    cfg = make_cfg("lora")
    cfg.method.name = "noestimate"
    from bench.estimate import predict

    message = "bench.estimate does not model method 'noestimate' (it gives no estimator terms)"
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        predict.predict_cell(cfg, "cpu")
    from bench.estimate import __main__ as cli
    from bench.launch import cli as launch_cli

    monkeypatch.setattr(launch_cli, "validate_argv", lambda argv: [cfg])  # the estimator's cells come from it
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["method=lora", "model=tiny", "device=cpu"])
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert err == [f"bench.estimate: error: {message}"]


def test_cpu_dora_trains_magnitudes_and_adapters_not_the_base():
    cfg = make_cfg("dora", lr=1e-2)
    torch.manual_seed(0)
    method = methods.get("dora")
    model = method.wrap(models.build_model(cfg, "cpu", torch.float32), cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = method.make_optimizer(model, cfg)
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    for _ in range(3):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert any("lora_magnitude_vector" in n for n in changed)
    assert any("lora_B" in n for n in changed)
    assert all(".lora_" in n for n in changed)  # the base is frozen


@pytest.mark.parametrize("model", ["tiny", "llama2-7b"])
def test_cpu_meta_dora_trainable_count_is_peft_count(model):
    """peft's own trainable count of the DoRA model equals the estimator's inventory (both on the meta device):
    LoRA's r (in + out) per adapted layer plus DoRA's out_features magnitudes."""
    from bench.estimate.inventory import build_inventory
    from bench.estimate.predict import build_meta_model

    cfg = make_cfg("dora", model)
    net = build_meta_model(cfg, torch.bfloat16)
    peft_trainable, _ = net.get_nb_trainable_parameters()
    inv = build_inventory(cfg, net)
    assert inv.trainable() == peft_trainable
    a = cfg.model.arch
    lora_trainable = make_cfg("lora", model)  # same rank and targets: q and v
    heads = a["num_attention_heads"]
    q_out = heads * a.get("head_dim", a["hidden_size"] // heads)
    kv_out = a.get("num_key_value_heads", heads) * a.get("head_dim", a["hidden_size"] // heads)
    r, h, layers = lora_trainable.method.rank, a["hidden_size"], a["num_hidden_layers"]
    assert peft_trainable == layers * (r * (h + q_out) + r * (h + kv_out) + q_out + kv_out)

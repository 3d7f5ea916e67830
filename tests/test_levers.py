"""Speed levers (issue 17): config fields that default to the old behaviour and keep old hashes, refusals
before any work, the cumulative rows of +experiment=levers, padding-free packing checked against the padded
batch of the same examples (same real tokens, same loss, no attention across examples), the lever fields of
the record's setup, per-layer compile, and the report's levers block on hand-made records. CPU, fast."""
import importlib.util
from pathlib import Path

import pytest
import torch

from bench.config import ConfigError
from bench.record import config_hash
from bench.report.blocks import levers as block
from bench.report.load import Rec
from bench.stats import Estimate
from tests.conftest import compose_raw

ROWS = ["eager", "sdpa", "packing", "checkpointing", "adamw8bit", "compile", "liger"]
LEVER_KEYS = [("model", "attn_implementation"), ("task", "packing"), ("train", "gradient_checkpointing"),
              ("method", "optimizer"), ("train", "compile"), ("train", "liger")]


def test_levers_default_to_the_old_behaviour_and_old_records_keep_their_hash(make_cfg):
    from bench.config import to_dict

    cfg = make_cfg()
    assert (cfg.train.compile, cfg.train.liger, cfg.task.packing, cfg.task.min_seq_len) == (False, False, False, 0)
    config = to_dict(cfg)
    old = {**config, "train": {k: v for k, v in config["train"].items() if k not in ("compile", "liger")},
           "task": {k: v for k, v in config["task"].items() if k not in ("packing", "min_seq_len")}}
    assert config_hash(old) == config_hash(config)  # a record made before the levers: same cell, same hash
    for group, key, value in [("train", "compile", True), ("train", "liger", True), ("task", "packing", True),
                              ("task", "min_seq_len", 8)]:
        changed = {**config, group: {**config[group], key: value}}
        assert config_hash(changed) != config_hash(config), f"{group}.{key}"


@pytest.mark.parametrize("overrides, key", [
    (["model.attn_implementation=flash_attention_2"], "model.attn_implementation"),
    (["train.liger=true"], "train.liger"),
    (["task=sst2", "+task.packing=true"], "task.packing"),
    (["task=sst2", "+task.min_seq_len=8"], "task.min_seq_len"),
    (["task.min_seq_len=200", "train.seq_len=128"], "task.min_seq_len"),
    (["task.min_seq_len=-1"], "task.min_seq_len"),
])
def test_unavailable_levers_are_refused_naming_the_key(make_cfg, overrides, key):
    if "flash" in overrides[0] and importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash_attn is installed here")
    if "liger" in overrides[0] and importlib.util.find_spec("liger_kernel") is not None:
        overrides = [*overrides, "device=cpu"]  # installed: still refused off CUDA
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_cfg(*overrides)


def test_liger_installed_is_still_refused_on_the_cpu_once_the_device_is_known(make_cfg, monkeypatch):
    from bench.cell import levers

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "liger_kernel" else real(name, *a))
    cfg = make_cfg("train.liger=true")  # device=auto: the config can't tell yet
    with pytest.raises(ConfigError, match=r"train\.liger: .*CUDA"):
        levers.check(cfg, "cpu")


def test_the_experiment_rows_each_add_one_lever(make_cfg):
    states = []
    for row in ROWS:
        raw = compose_raw("+experiment=levers", f"+lever={row}")
        states.append([raw[g][k] for g, k in LEVER_KEYS])
        assert raw["task"]["min_seq_len"] == 8 and raw["experiment_name"] == "levers-cpu"
        if row != "liger":  # liger needs CUDA and liger-kernel
            make_cfg("+experiment=levers", f"+lever={row}")  # binds and validates
    assert states[0] == ["eager", False, False, "adamw", False, False]
    for before, after in zip(states, states[1:]):
        assert sum(a != b for a, b in zip(before, after)) == 1, (before, after)
    assert states[-1] == ["sdpa", True, True, "adamw8bit", True, True]


def tiny_llama(attn: str) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model("llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=4, vocab_size=128,
                                  max_position_embeddings=64, use_cache=False)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn).eval()


def test_synthetic_batches_without_levers_are_the_old_full_batches():
    from bench.tasks import synthetic

    batch = next(synthetic.batches(128, 3, 16, "cpu", seed=5))
    ids = torch.randint(0, 128, (3, 16), generator=torch.Generator().manual_seed(5))
    assert set(batch) == {"input_ids", "labels"} and torch.equal(batch["input_ids"], ids)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_and_padded_batches_hold_the_same_examples_tokens_and_loss(attn):
    from bench.tasks import synthetic

    padded = next(synthetic.batches(128, 4, 24, "cpu", seed=1, min_seq_len=3))
    packed = next(synthetic.batches(128, 4, 24, "cpu", seed=1, min_seq_len=3, packing=True))
    lengths = padded["attention_mask"].sum(1).tolist()
    assert len(set(lengths)) > 1 and padded["input_ids"].shape == (4, max(lengths))
    assert set(packed) == {"input_ids", "labels", "position_ids"} and packed["input_ids"].shape == (1, sum(lengths))
    # the step loop counts real tokens: the mask's sum padded, every id packed
    assert int(padded["attention_mask"].sum()) == packed["input_ids"].numel()
    real = torch.cat([row[:n] for row, n in zip(padded["input_ids"], lengths)])
    assert torch.equal(real, packed["input_ids"][0])
    starts = torch.tensor([0, *torch.tensor(lengths).cumsum(0)[:-1].tolist()])
    assert packed["position_ids"][0, starts].eq(0).all() and packed["labels"][0, starts].eq(-100).all()
    model = tiny_llama(attn)
    with torch.no_grad():
        loss_padded, loss_packed = model(**padded).loss, model(**packed).loss
        # no attention across examples: each packed example's logits are those of the example alone
        logits = model(**packed).logits[0]
        for start, n, row in zip(starts.tolist(), lengths, padded["input_ids"]):
            alone = model(input_ids=row[:n][None]).logits[0]
            torch.testing.assert_close(logits[start:start + n], alone, atol=1e-4, rtol=1e-4)
        # the control: positions running on across examples (no reset) let later examples see earlier ones
        leaky = model(input_ids=packed["input_ids"], labels=packed["labels"]).loss
    torch.testing.assert_close(loss_packed, loss_padded, atol=1e-5, rtol=1e-5)
    assert abs(float(leaky) - float(loss_packed)) > 1e-4


def test_compile_marks_each_decoder_layer_lazily():
    from bench.cell import levers

    model = tiny_llama("sdpa")
    names = levers.compile_layers(model)
    assert names == ["model.layers.0", "model.layers.1"] and levers.compiled_blocks(model) == 2


def test_setup_records_the_levers(make_cfg):
    from bench.cell import runner

    cfg = make_cfg("device=cpu", "model.attn_implementation=eager", "task.packing=true", "task.min_seq_len=16",
                   "train.compile=true")
    planned = runner.plan(cfg, "cpu")
    setup = runner.setup(cfg, "cpu", planned)
    assert {k: setup[k] for k in ("attn_implementation", "compile", "liger", "packing", "min_seq_len")} == {
        "attn_implementation": "eager", "compile": True, "liger": False, "packing": True, "min_seq_len": 16}


def rec(i: int, row: str, tokens: tuple, peak: float | None, status: str = "success", device: str = "cuda",
        experiment: str = "levers-gpu") -> Rec:
    raw_cfg = compose_raw("+experiment=levers", f"+lever={row}")
    flat = {"id": i, "status": status, "method": "lora", "bits": 16, "optimizer": raw_cfg["method"]["optimizer"],
            "model": "llama3.2-1b", "task": "synthetic", "batch_size": 8, "seq_len": 2048, "grad_accum": 1,
            "device": device, "group": "NVIDIA H100 80GB HBM3", "experiment": experiment,
            "created_at": f"2026-01-0{i}", "error_type": "OutOfMemoryError" if status == "oom" else None}
    est = {"tokens": Estimate(*tokens, n=20, method="t") if status == "success" else None,
           "peak": Estimate(peak, peak, peak, 1, "exact") if peak and status == "success" else None}
    return Rec(Path(f"r{i}.json"), {"config": raw_cfg, "setup": {}}, flat, est)


def test_block_rows_in_lever_order_with_ratios_and_ties():
    records = [rec(3, "packing", (3000, 2900, 3100), 10e9), rec(1, "eager", (1000, 950, 1050), 12e9),
               rec(2, "sdpa", (1020, 970, 1070), 12e9), rec(4, "checkpointing", (2300, 2250, 2350), 6e9),
               rec(5, "adamw8bit", (0, 0, 0), None, status="oom"),
               rec(9, "eager", (1, 1, 1), 1e9, experiment="first_run")]
    built = block.build(records)
    assert built is not None and built.key == "levers" and len(built.tables) == 1
    rows = [[c.text for c in r] for r in built.tables[0].rows]
    assert [r[2] for r in rows] == ["baseline (eager attention)", "+sdpa", "+packing", "+checkpointing",
                                    "+8-bit AdamW"]
    assert rows[1][4].endswith(", n.s.")  # 1020 vs 1000 with overlapping intervals: a tie
    assert rows[2][4].startswith("\u00d72.94 [") and "n.s." not in rows[2][4]
    assert rows[3][7].startswith("\u00d70.60")  # checkpointing: 6 GB of 10, exact CUDA peaks
    assert rows[4][3] == "OOM"
    assert "compile, liger" in built.tables[0].footnotes[0]


def test_no_block_without_levers_records():
    assert block.build([rec(1, "eager", (1, 1, 1), 1e9, experiment="first_run")]) is None

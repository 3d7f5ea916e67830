"""Several processes for one cell (parallel=fsdp|ddp through torchrun) on CPU: gloo, two ranks, real cells.

Only the CPU/gloo path can be tested here; NCCL on several GPUs is the same code with another backend.
"""
import json
import math
import sys

import pytest

from conftest import bench_cli, compose_raw

QUICK = ["model=tiny", "train.steps=3", "train.warmup_steps=1"]


def bench_run(*args, results):
    return bench_cli(*QUICK, *args, f"results_dir={results}", timeout=300)


def single_process_params():
    """What one process counts for the same cell: the real model, built and wrapped, no sharding."""
    import torch

    from bench import methods

    from bench.cell import models
    from bench.config import build_run_config
    from bench.trackers.params import count_parameters

    cfg = build_run_config(compose_raw("method=lora", *QUICK, "device=cpu"))
    model = methods.get("lora").wrap(models.build_model(cfg, "cpu", torch.float32), cfg)
    return count_parameters(model)


@pytest.mark.parametrize("parallel", ["fsdp", pytest.param("ddp", marks=pytest.mark.slow)])
def test_two_rank_cell_through_torchrun(tmp_path, parallel):
    code, out = bench_run("method=lora", "nproc=2", f"parallel={parallel}", "isolate=always", results=tmp_path)
    assert code == 0, out[-3000:]
    (path,) = tmp_path.rglob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "success", record["error"]
    dist = record["distributed"]
    assert (dist["world_size"], dist["parallel"], dist["backend"]) == (2, parallel, "gloo")
    assert [r["rank"] for r in dist["per_rank"]] == [0, 1]
    assert all(r["peak_bytes"] > 0 and r["steps_per_s"] > 0 for r in dist["per_rank"])
    assert record["memory"]["peak_bytes"] == max(r["peak_bytes"] for r in dist["per_rank"])
    assert record["memory"]["rank"] == dist["memory_rank"]
    timing = record["timing"]
    assert timing["samples_per_step"] == 2 * 4 and timing["tokens_per_step"] == 2 * 4 * 128  # both ranks
    assert record["params"] == single_process_params()  # logical totals, not one rank's shard
    whole = record["params"]["total"] * 4  # fp32 on CPU
    if parallel == "fsdp":  # each rank holds half of the adapters' gradients
        assert record["state_bytes"]["gradients"] == record["params"]["trainable"] * 4 // 2
        assert dist["load"] == "meta_sharded"  # random init: built on meta, only each rank's shards made
        assert [r["local_param_bytes"] for r in dist["per_rank"]] == [whole // 2] * 2
        assert "estimate is per rank" in " ".join(record["preflight"]["notes"])
    else:
        assert dist["load"] == "whole_model"
        assert [r["local_param_bytes"] for r in dist["per_rank"]] == [whole] * 2
    assert dist["activation_checkpointing"] is False  # train.gradient_checkpointing=false
    assert abs(record["losses"][0] - math.log(4096)) < 0.5  # a sane random init: near ln(vocab)


BIGGER = ["model.arch.hidden_size=768", "model.arch.intermediate_size=2048", "model.arch.num_hidden_layers=6",
          "model.arch.num_attention_heads=12", "model.arch.num_key_value_heads=12", "train.batch_size=1",
          "train.seq_len=32", "train.steps=2"]  # about 49M parameters, 196 MB in fp32


def test_fsdp_rank_materialises_only_its_shards(tmp_path):
    """The point of building on meta: a rank's load grows by its shards, not by the whole model."""
    code, out = bench_run("method=lora", *BIGGER, "train.gradient_checkpointing=true", "nproc=2",
                          "parallel=fsdp", results=tmp_path)
    assert code == 0, out[-3000:]
    (path,) = tmp_path.rglob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "success", record["error"]
    dist, whole = record["distributed"], record["params"]["total"] * 4
    assert whole > 190e6 and dist["load"] == "meta_sharded"
    held = [r["local_param_bytes"] for r in dist["per_rank"]]
    assert sum(held) == whole and all(abs(h - whole / 2) < 0.01 * whole for h in held)
    load = record["memory"]["phases"]["load"]  # the rank with the highest peak
    grew = max(load["rss_hwm"] or 0, load["rss_peak"]) - load["rss_start"]
    # a single-process build grows by at least the whole model (196 MB; measured 198 MB); a rank by its half
    assert grew < 0.7 * whole, (grew, whole)
    assert dist["activation_checkpointing"] is True  # enabled on the meta model, still on after materialising
    assert record["setup"]["gradient_checkpointing"] is True
    assert abs(record["losses"][0] - math.log(4096)) < 0.5


def test_materialised_shards_have_the_random_init_values():
    """A world of one: every value made by materialize_shards (normal / ones / LoRA's zero B / peft's A)."""
    import torch

    from bench import methods

    from bench.cell import distributed

    from bench.cell import models
    from bench.config import build_run_config

    cfg = build_run_config(compose_raw("method=lora", *QUICK, "device=cpu", "parallel=fsdp", "isolate=never",
                                       "train.gradient_checkpointing=true"))
    world = distributed.start(cfg, "cpu")
    try:
        model = methods.get("lora").wrap(models.build_model(cfg, "cpu", torch.float32, meta=True), cfg)
        model = distributed.parallelize(model, world)
        distributed.materialize_shards(model, "cpu", 0.02, seed=0)
        state = distributed.local_state(model, "meta_sharded")
        loss = model(input_ids=torch.randint(0, 4096, (2, 16)), labels=torch.randint(0, 4096, (2, 16))).loss
        loss.backward()  # FSDP's lazy init re-points its storage at the materialised shards: values survive
        values = {name: p.full_tensor() for name, p in model.named_parameters()}
        rotary = next(m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding"))
    finally:
        distributed.close(world)
    assert state == {"local_param_bytes": single_process_params()["total"] * 4, "load": "meta_sharded",
                     "activation_checkpointing": True}
    assert abs(loss.item() - math.log(4096)) < 0.2 and loss.item() != pytest.approx(math.log(4096), abs=1e-4)
    q = values["base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"]
    assert abs(q.mean().item()) < 1e-3 and abs(q.std().item() - 0.02) < 1e-3
    assert torch.equal(values["base_model.model.model.norm.weight"], torch.ones(256))
    lora_a = values["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"]
    bound = 1 / math.sqrt(256)  # peft: kaiming_uniform_(a=sqrt(5)) on (r, in_features)
    assert lora_a.abs().max().item() <= bound and lora_a.std().item() > bound / 3
    assert all(not v.any() for name, v in values.items() if ".lora_B." in name)
    fresh = type(rotary)(config=rotary.config)
    assert torch.allclose(rotary.inv_freq, fresh.inv_freq)


def test_fsdp_preflight_is_per_rank():
    """Meta-sharded FSDP: weights, gradients and optimizer states / N, plus what FSDP gathers; DDP: whole."""
    from bench.config import build_run_config
    from bench.estimate.predict import predict_cell

    def predict(*args):
        return predict_cell(build_run_config(compose_raw("method=full", "model=7b", *args)), "cuda")

    one, fsdp, ddp = predict(), predict("nproc=8", "parallel=fsdp"), predict("nproc=8", "parallel=ddp")
    assert ddp.components == one.components
    whole, layer = one.components["weights"], one.components["weights"] / 40  # 32 layers + embeddings, head
    assert whole / 8 < fsdp.components["weights"] < whole / 8 + 0.2 * whole
    for key in ("gradients", "optimizer_states"):
        assert fsdp.components[key] <= one.components[key] / 8 + layer
    assert fsdp.components["activations_peak"] == one.components["activations_peak"]
    assert any(n.startswith("fsdp: per rank of 8") for n in fsdp.notes)
    assert fsdp.peak.total < one.peak.total / 2


@pytest.mark.slow
def test_a_failing_rank_writes_the_record_and_torchrun_stops(tmp_path):
    code, out = bench_run("method=lora", "nproc=2", "parallel=ddp", "fault=raise", results=tmp_path)
    assert code == 1, out[-3000:]
    (path,) = tmp_path.rglob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "failed"
    assert record["error"]["message"].endswith("of 2: injected fault (fault=raise)")
    assert record["distributed"]["failed_rank"] in (0, 1) and record["distributed"]["per_rank"] == []


def test_a_world_of_one_runs_in_process(tmp_path):
    """parallel=ddp with isolate=never and nproc=1: the same code path, no torchrun."""
    from bench.cell.runner import run_cell
    from bench.config import build_run_config

    cfg = build_run_config(compose_raw("method=lora", *QUICK, "parallel=ddp", "isolate=never",
                                       f"results_dir={tmp_path}"))
    record, path = run_cell(cfg)
    assert record["status"] == "success", record["error"]
    assert path.exists() and record["distributed"]["world_size"] == 1
    assert record["distributed"]["per_rank"][0]["peak_bytes"] == record["memory"]["peak_bytes"]
    import torch.distributed

    assert not torch.distributed.is_initialized()  # the process group is destroyed at the end


@pytest.mark.parametrize("args, needle", [
    (["method=qlora", "parallel=fsdp"], "parallel: qlora (4-bit bitsandbytes base) with fsdp is not supported"),
    (["method=galore", "parallel=fsdp"], "parallel: galore with fsdp is not supported"),
    (["nproc=0"], "nproc must be >= 1 (got 0)"),
    (["nproc=2", "parallel=none"], "nproc: 2 processes need parallel=fsdp or parallel=ddp"),
    (["nproc=2", "parallel=fsdp", "isolate=never"], "isolate: nproc > 1 needs the launcher"),
    (["parallel=zero"], "parallel must be one of none, fsdp, ddp"),
    (["-m", "method=lora,qlora", "parallel=fsdp"], "parallel: qlora"),  # a sweep fails before any cell
])
def test_bad_combinations_exit_2_with_one_line_and_no_record(tmp_path, capsys, args, needle):
    from bench.run import main

    with pytest.raises(SystemExit) as exit_info:
        main([*QUICK, *args, f"results_dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(err) == 1 and err[0].startswith("bench.run: error: ") and needle in err[0], err
    assert not list(tmp_path.rglob("*.json"))


def test_bad_combination_through_the_real_entry_point(tmp_path):
    code, out = bench_run("method=qlora", "parallel=fsdp", results=tmp_path)
    assert code == 2 and out.strip().startswith("bench.run: error: parallel: qlora") and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1 and not list(tmp_path.rglob("*.json"))


def test_hash_keeps_single_process_cells_and_separates_parallel_ones():
    from bench.config import build_run_config, to_dict
    from bench.record import config_hash

    one = to_dict(build_run_config(compose_raw(*QUICK)))
    before = {k: v for k, v in one.items() if k not in ("nproc", "parallel")}  # a record from before the keys
    assert config_hash(one) == config_hash(before)
    assert config_hash({**one, "parallel": "fsdp"}) != config_hash(one)
    assert config_hash({**one, "parallel": "fsdp", "nproc": 2}) != config_hash({**one, "parallel": "fsdp"})


def test_launcher_command():
    from bench.config import build_run_config
    from bench.launch.launcher import cell_command

    cfg = build_run_config(compose_raw(*QUICK, "nproc=4", "parallel=fsdp"))
    assert cell_command(cfg, "c.json") == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                           "--nproc_per_node", "4", "-m", "bench.launch.worker", "c.json"]
    single = build_run_config(compose_raw(*QUICK))
    assert cell_command(single, "c.json") == [sys.executable, "-m", "bench.launch.worker", "c.json"]

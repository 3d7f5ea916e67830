"""GPU cells (opt-in: `pytest -m gpu` on a CUDA machine; skipped elsewhere). A ~1B random-init Llama, each
method for a few steps: NVML is the headline peak, torch's reserved peak sits under it, energy is read."""
import pytest
import torch

from bench.cell.runner import run_cell

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("method", ["full", "lora", "qlora", "galore"])
def test_one_billion_cell_on_gpu(make_cfg, method):
    rank = [] if method == "full" else ["method.rank=16"]
    cfg = make_cfg(f"method={method}", "model=1b", "train.steps=8", "train.warmup_steps=3",
                   "train.batch_size=4", "train.seq_len=512", *rank)
    record, path = run_cell(cfg)
    assert record["status"] == "success", record["error"]
    memory = record["memory"]
    assert memory["device"] == "cuda" and memory["peak_source"].startswith("nvml")
    train = memory["phases"]["train"]
    assert train["samples"] >= 10  # 10 ms sampler over the whole phase
    assert train["torch_max_allocated"] <= train["torch_max_reserved"] <= memory["peak_bytes"]
    assert record["energy"] is None or record["energy"]["joules_per_step"] > 0
    assert len(record["timing"]["warmup_step_times_s"]) == 3
    assert record["env"]["gpu"]["name"] and record["setup"]["compute_dtype"] in ("bfloat16", "float16")


def test_forked_cells_use_the_gpu(tmp_path):
    """cell_start=fork on a GPU: the server must not have initialised CUDA, so both cells run on it."""
    import json

    from conftest import bench_cli

    code, out = bench_cli("-m", "method=lora,qlora", "model=tiny", "device=cuda", "train.steps=5",
                          "train.warmup_steps=1", "cell_start=fork", f"results_dir={tmp_path}")
    assert code == 0 and "cells start with exec instead" not in out, out[-3000:]
    records = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert len(records) == 2
    for record in records:
        assert record["status"] == "success" and record["env"]["cell_start"] == "fork"
        assert record["memory"]["device"] == "cuda"

"""The report's "What fits where" block on hand-made records: measured cells on the GPU they ran on, the
stored CUDA prediction elsewhere, OOM, borderline within the estimator's 5 %, bench.fit's longest context per
method, and no block without GPU records or fit records (no torch: records only)."""
import json
from pathlib import Path

from bench.estimate.gpus import load_catalog
from bench.report.blocks import fits
from bench.report.load import Rec

CATALOG = load_catalog()
GPUS = [CATALOG[k] for k in ("rtx3060", "rtx4090", "h100")]


def rec(i, method="lora", model="llama2-7b", status="success", device="cuda", gpu="NVIDIA H100 80GB HBM3",
        peak=None, est=None, gpu_mem=85_000_000_000, raw=None) -> Rec:
    flat = {"id": i, "status": status, "method": method, "label": method, "model": model, "task": "synthetic",
            "batch_size": 4, "seq_len": 512, "grad_accum": 1, "device": device,
            "gpu_name": gpu if device == "cuda" else None,
            "gpu_memory_bytes": gpu_mem if device == "cuda" else None, "peak_bytes": peak,
            "est_device": "cuda" if est else None, "est_needs_device_bytes": est, "created_at": f"2026-01-0{i}"}
    return Rec(Path(f"r{i}.json"), raw or {}, flat)


def texts(table):
    return [[c.text for c in row] for row in table.rows]


def test_no_block_without_gpu_records():
    assert fits.build([rec(1, device="cpu", peak=10**8)]) is None
    assert fits.fit_table([rec(1, device="cpu", peak=10**8)], GPUS) is None


def test_measured_on_its_gpu_estimated_elsewhere_oom_and_borderline():
    records = [rec(1, peak=17_000_000_000, est=15_000_000_000),
               rec(2, method="full", status="oom", gpu="NVIDIA GeForce RTX 4090", gpu_mem=24_000_000_000,
                   est=110_000_000_000),
               rec(3, method="qlora", status="skipped", est=23_500_000_000)]
    table = fits.fit_table(records, GPUS)
    rows = {r[1]: r[3:] for r in texts(table)}
    # the measured peak (17.0 GB), not the stale stored prediction (15.0), judges the other GPUs
    assert rows["lora"] == ["17.0 measured (NVIDIA H100 80GB HBM3)", "no (est.)", "fits (est.)", "fits (measured)"]
    assert rows["full"] == ["110 predicted", "no (est.)", "no (OOM, measured)", "no (est.)"]
    assert rows["qlora"] == ["23.5 predicted", "no (est.)", "borderline (est.)", "fits (est.)"]  # within 5 % of 24 GB
    kinds = {r[1].text: [c.kind for c in r[4:]] for r in table.rows}
    assert kinds["lora"] == ["est", "est", "fits"] and kinds["full"][1] == "fail"


def test_a_record_without_peak_or_cuda_prediction_is_an_empty_cell():
    failed = rec(1, status="failed", est=None)
    assert [c.kind for c in fits.fit_table([failed], GPUS).rows[0][4:]] == ["none", "none", "none"]


def search(method, answer, failing, converged=True, bits=16, **extra) -> dict:
    """A bench.fit search record as docs/fit.md lays it out."""
    return {"kind": "fit", "fit_schema_version": 1, "created_at": "2026-01-01T00:00:00Z", "method": method,
            "model": "llama3-8b", "task": "synthetic", "cell": {"method": method, "bits": bits}, "axis": "seq_len",
            "fixed": {"batch_size": 1, "grad_accum": 1, "gradient_checkpointing": True},
            "device": {"kind": "cuda", "name": "NVIDIA GeForce RTX 4090", "memory_bytes": 24_000_000_000},
            "cell_memory_cap_gb": 0, "answer": answer, "first_failing": failing, "converged": converged,
            "stop_reason": "resolution" if converged else "time cap: 30 min", **extra}


def test_longest_context_per_method_from_fit_search_records(tmp_path):
    exp = tmp_path / "fit"
    (exp / "logs").mkdir(parents=True)
    probe = rec(1, peak=20_000_000_000, gpu="NVIDIA GeForce RTX 4090", gpu_mem=24_000_000_000)
    probe.path = exp / "lora-probe.json"
    other = rec(2, method="full", peak=30_000_000_000)
    other.path = exp / "full.json"
    searches = [search("lora", 8192, 9216, probes=[{"value": 8192, "status": "success", "record": "lora-probe.json"}]),
                search("qlora", 32768, None, bits=4), search("full", None, 128), search("dora", 4096, 16384, False)]
    for i, raw in enumerate(searches):
        (exp / "logs" / f"fit-{raw['method']}-{i}.json").write_text(json.dumps(raw))
    (exp / "logs" / "fit-broken.json").write_text("{not json")
    block = fits.build([probe, other])
    assert block is not None and block.key == "fits" and block.title == "What fits where"
    context, fit_table = block.tables
    assert context.columns == ["Model", "Device", "Searched", "Held fixed", "full", "lora", "dora", "qlora 4-bit"]
    assert texts(context) == [["llama3-8b", "NVIDIA GeForce RTX 4090 (24.0 GB)", "longest sequence",
                               "batch 1, checkpointing", "none (OOM at 128)", "8,192 (OOM at 9,216)",
                               ">= 4,096 (time cap: 30 min)", "32,768 (none ran out)"]]
    assert [r[1] for r in texts(fit_table)] == ["full"]  # the search's probe is not a row of the fit table


def test_block_is_built_by_the_report():
    from bench.report.blocks import build_blocks

    keys = [b.key for b in build_blocks([rec(1, peak=17_000_000_000, est=17_100_000_000)])]
    assert "fits" in keys

"""bench.estimate --calibrate on the committed H100 records: every successful cell's headline peak (NVML process
peak) within +-5 %, also with the CUDA runtime terms refitted without the cell's model size; the fit itself (the
shipped constants are its output, a held-out size never reaches its own fit); paged optimizer states outside
the peak; bad input."""
from __future__ import annotations

import dataclasses
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from bench.estimate import cuda_fit  # noqa: E402
from bench.estimate.peak import CUDA_FIT, allocator_key, context_key  # noqa: E402
from bench.methods.interface import Terms  # noqa: E402
from conftest import ROOT  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:The following (rank|alpha)_pattern keys:RuntimeWarning")]
H100 = ROOT / "results" / "gpu-h100"


def successful_records() -> list[str]:
    return sorted(p.name for p in H100.glob("*.json") if json.loads(p.read_text())["status"] == "success")


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    from bench.estimate.__main__ import main

    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def h100(tmp_path_factory):
    """The CLI on results/gpu-h100 once: (JSON rows, stdout, the fit points the leave-one-out check got)."""
    import contextlib  # capsys is function-scoped: stdout captured by hand
    import io

    from bench.estimate.__main__ import main

    out_json = tmp_path_factory.mktemp("calibrate") / "h100.json"
    seen: list[list[cuda_fit.Point]] = []
    real = cuda_fit.leave_one_size_out
    cuda_fit.leave_one_size_out = lambda points: seen.append(list(points)) or real(points)
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            main(["--calibrate", str(H100), "--json", str(out_json)])
    finally:
        cuda_fit.leave_one_size_out = real
    return json.loads(out_json.read_text()), stdout.getvalue(), seen[0]


def test_every_successful_h100_cell_is_within_5_percent_of_its_nvml_peak(h100):
    rows, text, _ = h100
    assert sorted(r["record"] for r in rows) == successful_records() and len(rows) == 16
    for r in rows:
        measured = json.loads((H100 / r["record"]).read_text())["memory"]["peak_bytes"]
        assert r["measured_peak_bytes"] == measured
        assert r["error_pct"] == pytest.approx(100 * (r["predicted_peak_bytes"] - measured) / measured)
        assert abs(r["error_pct"]) <= 5, r
    assert len({r["label"] for r in rows}) == 16  # precision, batch and length tell the two full/1B cells apart
    assert {"full/llama3.2-1b bf16 pure b4x512 ckpt", "full/llama3.2-1b bf16 mixed b4x512 ckpt"} <= {
        r["label"] for r in rows}
    assert "16/16 records within +-5%" in text


def test_leave_one_model_size_out_keeps_every_cell_within_5_percent(h100):
    rows, text, _ = h100
    for r in rows:
        assert r["loo_fit"]["source"] == f"without {r['held_out_size']}"
        assert r["loo_predicted_peak_bytes"] is not None and abs(r["loo_error_pct"]) <= 5, r
    assert {r["held_out_size"] for r in rows} == {"1B", "3B", "7B", "8B", "13B"}
    assert "leave-one-model-size-out: 16/16 within +-5%" in text


def test_a_held_out_size_never_reaches_its_own_fit(h100):
    """Make the held-out records' measurements absurd: their leave-one-out predictions must not move (the
    fit on all records does, so the change is one the fit would see)."""
    points = h100[2]
    before = cuda_fit.leave_one_size_out(points)
    for size in {p.size for p in points}:
        poisoned = [dataclasses.replace(p, measured_slack_bytes=p.measured_slack_bytes * 5 + 10**10,
                                        measured_context_bytes=p.measured_context_bytes + 10**10)
                    if p.size == size else p for p in points]
        after = cuda_fit.leave_one_size_out(poisoned)
        for p in (p for p in points if p.size == size):
            assert after[p.record]["predicted_peak_bytes"] == before[p.record]["predicted_peak_bytes"]
        assert cuda_fit.fit(poisoned) != cuda_fit.fit(points)


def test_the_shipped_constants_are_the_refit_of_the_committed_records(h100):
    refit = cuda_fit.fit(h100[2])
    for key in ("context_bytes", "allocator_bytes", "allocator_per_dequantized_byte"):
        assert refit[key] == CUDA_FIT[key], key
    # the records themselves: NVML - reserved is one value per optimizer library, to the byte
    by_key: dict[str, set[int]] = {}
    for p in h100[2]:
        by_key.setdefault(p.context_key, set()).add(p.measured_context_bytes)
    assert all(len(v) == 1 for v in by_key.values()) and set(by_key) == {"torch", "bitsandbytes", "galore-torch"}


def test_runtime_keys_follow_the_optimizer_library_and_the_training_regime():
    torch_adapters, galore = Terms(trains_base=False), Terms(trains_base=True, optimizer_library="galore-torch")
    assert context_key(torch_adapters, "adamw") == "torch"
    assert context_key(torch_adapters, "paged_adamw") == "bitsandbytes"
    assert context_key(galore, "adamw") == "galore-torch"
    assert allocator_key(Terms(trains_base=True, fp32_master=True), 16) == "full mixed"
    assert allocator_key(Terms(trains_base=True), 16) == "full 16-bit"
    assert allocator_key(galore, 16) == "galore"
    assert allocator_key(torch_adapters, 16) == "adapters"
    assert allocator_key(torch_adapters, 4) == "quantized base"


def test_paged_optimizer_states_are_their_own_component_outside_the_peak():
    """bitsandbytes pages the states of a tensor of >= 1e5 values (get_state_buffer); rank 64 on a 2048-wide
    MLP makes the MLP adapters' A or B that large, the attention ones stay under it."""
    from bench.config import build_run_config
    from bench.estimate.predict import predict_cell
    from conftest import compose_raw

    small = ["model.arch.hidden_size=256", "model.arch.intermediate_size=2048", "model.arch.num_hidden_layers=2",
             "model.arch.num_attention_heads=4", "model.arch.num_key_value_heads=2", "model.arch.vocab_size=256",
             "train.batch_size=2", "train.seq_len=16", "method.rank=64"]
    qlora = predict_cell(build_run_config(compose_raw("method=qlora", *small)), "cuda")
    paged = sum(8 * r.numel for r in qlora.inventory.rows if r.trainable and r.numel >= 100_000)
    assert paged > 0 and qlora.components["paged_optimizer_states"] == paged
    assert qlora.peak.managed == {"paged_optimizer_states": paged}
    assert qlora.peak.total == qlora.peak.tensors + sum(qlora.peak.runtime.values())
    unpaged = predict_cell(build_run_config(compose_raw("method=qlora", "method.optimizer=adamw8bit", *small)),
                           "cuda")
    assert unpaged.components["paged_optimizer_states"] == 0 and not unpaged.peak.managed
    on_cpu = predict_cell(build_run_config(compose_raw("method=qlora", "device=cpu", *small)), "cpu")
    assert on_cpu.components["paged_optimizer_states"] == 0  # bitsandbytes does not page on CPU


@pytest.mark.parametrize("target", ["missing-folder", "empty-folder"])
def test_a_bad_calibrate_path_exits_2_with_one_line_and_writes_nothing(target, tmp_path, capsys):
    path = tmp_path / target
    if target == "empty-folder":
        path.mkdir()
    out = tmp_path / "out.json"
    code, stdout, err = run_main(["--calibrate", str(path), "--json", str(out)], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and stdout == "", err
    assert lines[0].startswith("bench.estimate: error: --calibrate: ") and str(path) in lines[0]
    assert not out.exists()


def test_calibrate_paths_stop_at_the_next_option():
    from bench.estimate.__main__ import parse

    opts = parse(["--calibrate", "a", "b", "--json", "f.json"])
    assert opts["calibrate"] == ["a", "b"] and opts["json"] == "f.json"
